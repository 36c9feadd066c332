"""Where and who a client is: an address and credentials, given directly or read from a
config file of named contexts, like a kubeconfig (TOML, paths relative to the file):

    current-context = "local"

    [contexts.local]                      # written by `ringrift up` as <dir>/client.toml
    address = "127.0.0.1:50050"
    ca = "certs/ca.pem"                   # the cluster's CA: checks the gateway
    cert = "certs/user-alice-operator.pem"  # a client certificate and its key ...
    key = "certs/user-alice-operator-key.pem"
    server-name = "gateway.local.ringrift" # the name to expect in the gateway's certificate

    [contexts.prod]
    address = "gw.example.com:50049"      # a gateway's token port
    ca = "prod-ca.pem"
    token-file = "~/.ringrift/prod-token" # ... or a bearer token (token = "..." also works)
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_CONFIG = Path("~/.config/ringrift/config.toml")
KEYS = {"address", "ca", "cert", "key", "token", "token-file", "server-name", "insecure"}


class ConfigError(ValueError):
    """A config file or context that cannot be used, saying what to fix."""


@dataclass(frozen=True)
class Context:
    """An address and the credentials to present there."""

    address: str
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    token: str = ""
    server_name: str = ""
    insecure: bool = False

    def check(self) -> Context:
        if not self.address:
            raise ConfigError("no gateway address: give one (host:port) or a context that has one")
        if self.insecure:
            return self
        if self.token and (self.cert or self.key):
            raise ConfigError("give either a token or a client certificate, not both")
        if not self.ca:
            raise ConfigError("the cluster's CA certificate is needed to check the gateway (ca)")
        if not self.token and not (self.cert and self.key):
            raise ConfigError("credentials are needed: a client certificate and its key (cert, key) or a token")
        return self


def load_context(name: str = "", config: str | Path | None = None) -> Context:
    """The context ``name`` (else the file's current-context) of the config file ``config``
    (else ~/.config/ringrift/config.toml)."""
    path = Path(config if config is not None else DEFAULT_CONFIG).expanduser()
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(
            f"no client config at {path}: write one (see ringrift_client.config) or pass an address"
        ) from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read the client config {path}: {exc}") from None
    contexts = data.get("contexts", {})
    chosen = name or data.get("current-context", "")
    if not chosen:
        raise ConfigError(f"{path} sets no current-context: name a context ({', '.join(sorted(contexts))})")
    if chosen not in contexts:
        raise ConfigError(f"no context {chosen[:60]!r} in {path} (contexts: {', '.join(sorted(contexts)) or 'none'})")
    return _context(contexts[chosen], path.parent, f"{path} [contexts.{chosen}]")


def _context(values: dict[str, Any], base: Path, where: str) -> Context:
    unknown = set(values) - KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown keys {', '.join(sorted(unknown))} (known: {', '.join(sorted(KEYS))})")

    def path(key: str) -> Path | None:
        value = values.get(key)
        return None if not value else (base / Path(value).expanduser())

    token = str(values.get("token", ""))
    token_file = path("token-file")
    if token_file is not None:
        try:
            token = token_file.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"{where}: cannot read token-file {token_file}: {exc}") from None
    return Context(
        address=str(values.get("address", "")),
        ca=path("ca"),
        cert=path("cert"),
        key=path("key"),
        token=token,
        server_name=str(values.get("server-name", "")),
        insecure=bool(values.get("insecure", False)),
    )


def context_file(name: str, context: Context, relative_to: Path | None = None) -> str:
    """A config file holding ``context`` as ``name``, its current context (paths written
    relative to ``relative_to`` when under it)."""

    def text(value: str) -> str:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

    def shown(value: Path) -> str:
        if relative_to is not None and value.is_relative_to(relative_to):
            return str(value.relative_to(relative_to))
        return str(value)

    lines = [f"current-context = {text(name)}", "", f"[contexts.{name}]", f"address = {text(context.address)}"]
    for key, value in (("ca", context.ca), ("cert", context.cert), ("key", context.key)):
        if value is not None:
            lines.append(f"{key} = {text(shown(value))}")
    if context.server_name:
        lines.append(f"server-name = {text(context.server_name)}")
    if context.insecure:
        lines.append("insecure = true")
    return "\n".join(lines) + "\n"
