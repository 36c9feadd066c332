"""A certificate authority for tests: certificates for any identity on demand, settings
and environments that use them, and channels that present them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc

from ringrift_runtime.security import pki
from ringrift_runtime.security.identity import Identity, Kind, Role, any_gateway, dns_name, user
from ringrift_runtime.security.tls import CertFiles, ReloadingChannel, channel_credentials, secure_channel
from ringrift_runtime.settings import EtcdSettings

HOSTS = ["127.0.0.1", "localhost"]


class TestPki:
    __test__ = False  # not a test class

    def __init__(self, root: Path, cluster: str = "test") -> None:
        self.root = root
        self.cluster = cluster
        root.mkdir(parents=True, exist_ok=True)
        self.ca = pki.create_ca(cluster)
        self.ca_file, self.ca_key_file = pki.write(root, "ca", self.ca)
        self._issued: dict[str, CertFiles] = {}

    def files(self, identity: Identity, hosts: list[str] | None = None) -> CertFiles:
        """The certificate files of ``identity`` (issued once, then reused)."""
        key = identity.uri
        if key not in self._issued:
            name = identity.uri.removeprefix("spiffe://ringrift/").replace("/", "_")
            cert, private = pki.write(self.root, name, pki.issue(self.ca, identity, hosts or HOSTS))
            self._issued[key] = CertFiles(self.ca_file, cert, private)
        return self._issued[key]

    def identity(self, kind: Kind, name: str, cluster: str | None = None) -> Identity:
        return Identity(kind, name, cluster or self.cluster)

    def admin(self, cluster: str | None = None) -> Identity:
        return user("test-admin", Role.ADMIN, cluster or self.cluster)

    def env(self, identity: Identity) -> dict[str, str]:
        """RINGRIFT_SECURITY__* of a process with this identity (and its cluster's name)."""
        files = self.files(identity)
        return {
            "RINGRIFT_ETCD__CLUSTER_NAME": identity.cluster,
            "RINGRIFT_SECURITY__CA_FILE": str(files.ca),
            "RINGRIFT_SECURITY__CERT_FILE": str(files.cert),
            "RINGRIFT_SECURITY__KEY_FILE": str(files.key),
        }

    def security(self, identity: Identity) -> dict[str, Any]:
        """The ``security`` settings section of a process with this identity."""
        files = self.files(identity)
        return {"ca_file": files.ca, "cert_file": files.cert, "key_file": files.key}

    def etcd_settings(self, endpoint: str, cluster: str | None = None, **fields: Any) -> EtcdSettings:
        """Settings of an etcd client (a test administrator's certificate)."""
        files = self.files(self.admin(cluster))
        return EtcdSettings(
            endpoints=[endpoint], cluster_name=cluster or self.cluster, insecure=False,
            ca_file=files.ca, cert_file=files.cert, key_file=files.key, **fields,
        )  # fmt: skip

    def channel(self, address: str, server: str | Identity, as_: Identity | None = None) -> ReloadingChannel:
        """A mutual-TLS channel to ``address`` presenting ``as_`` (a test administrator by
        default), accepting only ``server`` (an identity, or "gateway" for any replica)."""
        caller = as_ or self.admin()
        if isinstance(server, Identity):
            name = server.dns
        elif server == "gateway":
            name = any_gateway(caller.cluster)
        else:
            name = dns_name(Kind.SERVICE, server, caller.cluster)
        return secure_channel(address, self.files(caller), name, [], [], 60.0)

    def sync_channel(self, address: str, server: Identity, as_: Identity | None = None) -> grpc.Channel:
        """A blocking (non-asyncio) mutual-TLS channel."""
        files = self.files(as_ or self.admin(server.cluster))
        options = [("grpc.ssl_target_name_override", server.dns)]
        return grpc.secure_channel(address, channel_credentials(files), options=options)

    def insecure(self, address: str) -> grpc.aio.Channel:
        """A plaintext channel (what an attacker without a certificate can open)."""
        return grpc.aio.insecure_channel(address)
