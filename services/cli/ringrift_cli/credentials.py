"""Who the command line is to the gateway: a client certificate (the local cluster's
administrator by default, under ``<dir>/certs``), a bearer token on the gateway's token
port, or nothing at all against a cluster that runs insecure. Chosen once per command
by the global options (``ringrift --cert ... status``) or RINGRIFT_CLI_* variables, and
handed to ringrift_client as a Context."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from ringrift_cli.console import fail
from ringrift_cli.local_cluster import CLIENT_FILE
from ringrift_client.config import ConfigError, Context, load_context
from ringrift_runtime.security import pki
from ringrift_runtime.security.identity import any_gateway
from ringrift_runtime.security.tls import CertFiles
from ringrift_runtime.settings import SettingsError, load_settings_of
from ringrift_settings import RingriftSettings


@dataclass
class Options:
    """The global options, set by the app's callback."""

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    token: str | None = None
    insecure: bool = False


OPTIONS = Options()


def _local_context(directory: Path) -> Context | None:
    """The administrator's context `ringrift up` wrote for its cluster (<dir>/client.toml)."""
    path = directory / CLIENT_FILE
    if not path.exists():
        return None
    try:
        return load_context(config=path)
    except ConfigError as exc:
        fail(f"cannot use the local cluster's credentials: {exc}", 2)


def _process_files() -> CertFiles | None:
    """The certificate of the process this runs beside (RINGRIFT_SECURITY__*, as in its
    container): an operator's command inside a gateway's container acts as that gateway."""
    try:
        security = load_settings_of(RingriftSettings).security
    except SettingsError:
        return None
    if security.insecure or not (security.ca_file and security.cert_file and security.key_file):
        return None
    return CertFiles(security.ca_file, security.cert_file, security.key_file)


def context(address: str, directory: Path) -> Context:
    """Where and who the command line is to the gateway at ``address``, as the options say."""
    if OPTIONS.insecure:
        return Context(address, insecure=True)
    if OPTIONS.token:
        if OPTIONS.ca is None:
            fail("a token needs the cluster's CA certificate to check the gateway: pass --ca ca.pem", 2)
        return Context(address, ca=OPTIONS.ca, token=OPTIONS.token)
    if OPTIONS.cert or OPTIONS.key or OPTIONS.ca:
        if not (OPTIONS.cert and OPTIONS.key and OPTIONS.ca):
            fail("a client certificate needs all of --ca, --cert and --key", 2)
        files = CertFiles(OPTIONS.ca, OPTIONS.cert, OPTIONS.key)
    else:
        local = _local_context(directory)
        if local is not None:
            return replace(local, address=address)
        process = _process_files()
        if process is None:
            fail(
                f"no credentials: no local cluster in {directory} (start one with `ringrift up`, or pass --dir); "
                "for another cluster pass --ca/--cert/--key (from `ringrift certs issue`) or --token",
                2,
            )
        files = process
    try:
        identities = pki.identities(files.cert.read_bytes())
    except (OSError, ValueError) as exc:
        fail(f"cannot use the certificate {files.cert}: {exc}", 2)
    if not identities:
        fail(f"{files.cert} names no RingRift identity (make one with `ringrift certs issue`)", 2)
    return Context(address, files.ca, files.cert, files.key, server_name=any_gateway(identities[0].cluster))
