"""A process's security, built once from its settings: plaintext (insecure) or mutual TLS
with its certificate files; its own identity, read from its certificate; credentials for
its server ports and channels."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import grpc

from ringrift_runtime.security.certinfo import read_certificate
from ringrift_runtime.security.identity import Identity, Kind, any_gateway, dns_name
from ringrift_runtime.security.tls import CertFiles, ContextSource, ReloadingChannel, secure_channel, server_credentials
from ringrift_runtime.settings import ProcessSettings, SettingsError

log = logging.getLogger("ringrift.security")

INSECURE_WARNING = (
    "SECURITY IS OFF (security.insecure=true): every port of this process is plaintext and trusts "
    "every caller; use this on a trusted network only"
)


class Security:
    def __init__(self, insecure: bool, cluster: str, files: CertFiles | None, reload_seconds: float) -> None:
        self.insecure = insecure
        self.cluster = cluster
        self.files = files
        self.reload_seconds = reload_seconds
        self.identity: Identity | None = None
        if files is not None:
            files.read()  # all three there
            found = [i for i in read_certificate(files.cert).identities() if i.cluster == cluster]
            if not found:
                raise SettingsError(
                    f"security.cert_file {files.cert}: the certificate names no identity of cluster {cluster!r}"
                )
            self.identity = found[0]

    @classmethod
    def of(cls, settings: ProcessSettings) -> Security:
        """The process's security; a clear error when mutual TLS lacks a file."""
        s = settings.security
        cluster = settings.etcd.cluster_name
        if s.insecure:
            return cls(True, cluster, None, s.reload_seconds)
        missing = [name for name in ("ca_file", "cert_file", "key_file") if getattr(s, name) is None]
        if missing:
            names = ", ".join(f"security.{m} (RINGRIFT_SECURITY__{m.upper()})" for m in missing)
            raise SettingsError(
                f"mutual TLS needs {names}: create them with `ringrift certs`, or set "
                "RINGRIFT_SECURITY__INSECURE=true for plaintext on a trusted network"
            )
        assert s.ca_file and s.cert_file and s.key_file
        files = CertFiles(s.ca_file, s.cert_file, s.key_file)
        try:
            return cls(False, cluster, files, s.reload_seconds)
        except FileNotFoundError as exc:
            raise SettingsError(f"mutual TLS: {exc}") from None

    def require(self, kind: Kind, name: str | None = None) -> None:
        """Refuse to start as a process whose certificate is another identity's."""
        if self.insecure:
            return
        assert self.identity is not None
        if self.identity.kind is not kind or (name is not None and self.identity.name != name):
            expected = f"{kind.value}:{name}" if name else kind.value
            raise SettingsError(
                f"security.cert_file {self.files.cert if self.files else ''} is {self.identity}, not {expected}"
            )

    def warn_if_insecure(self) -> None:
        if self.insecure:
            log.warning(INSECURE_WARNING)

    # -- servers -------------------------------------------------------------------
    def add_port(self, server: grpc.aio.Server, address: str, require_client_cert: bool = True) -> int:
        if self.insecure:
            return server.add_insecure_port(address)
        assert self.files is not None
        return server.add_secure_port(address, server_credentials(self.files, self.reload_seconds, require_client_cert))

    # -- channels ------------------------------------------------------------------
    def channel(
        self, target: str, server_name: str, options: Sequence[tuple[str, Any]], interceptors: Sequence[Any]
    ) -> grpc.aio.Channel | ReloadingChannel:
        if self.insecure:
            return grpc.aio.insecure_channel(target, options=options, interceptors=list(interceptors))
        assert self.files is not None
        return secure_channel(target, self.files, server_name, options, interceptors, self.reload_seconds)

    def service_name(self, service: str) -> str:
        """The DNS name a control-plane service's certificate carries."""
        if service == "gateway":
            return any_gateway(self.cluster)
        return dns_name(Kind.SERVICE, service, self.cluster)

    def agent_name(self, node_id: str) -> str:
        return dns_name(Kind.AGENT, node_id, self.cluster)

    # -- the byte stream -----------------------------------------------------------
    def stream_contexts(self, plaintext: bool) -> tuple[ContextSource | None, ContextSource | None]:
        """(server, client) SSL contexts for the agents' byte stream; (None, None) for plaintext."""
        if self.insecure or plaintext:
            return None, None
        assert self.files is not None
        return ContextSource(self.files, self.reload_seconds, True), ContextSource(
            self.files, self.reload_seconds, False
        )
