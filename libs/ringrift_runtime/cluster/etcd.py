"""etcd connections and the RingRift keyspace."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import aetcd
import grpc
from aetcd import rpc, watcher

from ringrift_runtime.security.identity import Kind, dns_name
from ringrift_runtime.security.tls import CertFiles, channel_credentials
from ringrift_runtime.settings import EtcdSettings

# The identity (service name) of etcd's own certificate.
ETCD_IDENTITY = "etcd"

# Errors that mean "etcd is not reachable right now or the stream broke": retry.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (aetcd.ClientError, grpc.RpcError, OSError, TimeoutError)

# Detect a dead connection to etcd within seconds, so watches re-list promptly. etcd
# answers pings more often than every 5 s (--grpc-keepalive-min-time), or pings without
# an open stream, with GOAWAY "too_many_pings"; stay inside both limits.
CHANNEL_OPTIONS = {
    "grpc.keepalive_time_ms": 10_000,
    "grpc.keepalive_timeout_ms": 3000,
    "grpc.keepalive_permit_without_calls": 0,
    "grpc.http2.max_pings_without_data": 0,
    "grpc.initial_reconnect_backoff_ms": 100,
    "grpc.max_reconnect_backoff_ms": 1000,
}


def split_endpoint(endpoint: str) -> tuple[str, int]:
    host, _, port = endpoint.rpartition(":")
    return host, int(port)


class TlsClient(aetcd.Client):
    """aetcd's client over mutual TLS (aetcd 1.0 opens only plaintext channels): the same
    connect, with a secure channel that presents this process's certificate and accepts
    only etcd's (its identity's DNS name)."""

    def __init__(self, files: CertFiles, server_name: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._files = files
        self._server_name = server_name

    async def connect(self) -> None:
        if self._connected.is_set():
            return
        if self._is_connecting:  # another task is connecting: wait for it
            await asyncio.wait_for(self._connected.wait(), self._connect_wait_timeout)
            return
        try:
            self._is_connecting = True
            options = [*self._options.items(), ("grpc.ssl_target_name_override", self._server_name)]
            self.channel = grpc.aio.secure_channel(
                f"{self._host}:{self._port}", channel_credentials(self._files), options=options
            )
            self.kvstub = rpc.KVStub(self.channel)
            self.clusterstub = rpc.ClusterStub(self.channel)
            self.leasestub = rpc.LeaseStub(self.channel)
            self.maintenancestub = rpc.MaintenanceStub(self.channel)
            self._watcher = watcher.Watcher(rpc.WatchStub(self.channel), timeout=self._timeout, metadata=self.metadata)
            self._connected.set()
        finally:
            self._is_connecting = False


def blocking_channel(settings: EtcdSettings, endpoint: str) -> grpc.Channel:
    """A blocking (thread-side) channel to one etcd endpoint: mutual TLS unless insecure."""
    options = list(CHANNEL_OPTIONS.items())
    if not settings.tls:
        return grpc.insecure_channel(endpoint, options=options)
    assert settings.ca_file and settings.cert_file and settings.key_file
    files = CertFiles(settings.ca_file, settings.cert_file, settings.key_file)
    server_name = dns_name(Kind.SERVICE, ETCD_IDENTITY, settings.cluster_name)
    return grpc.secure_channel(
        endpoint, channel_credentials(files), options=[*options, ("grpc.ssl_target_name_override", server_name)]
    )


def make_client(settings: EtcdSettings, attempt: int = 0) -> aetcd.Client:
    """An asyncio etcd client (mutual TLS unless insecure); ``attempt`` rotates through the
    configured endpoints."""
    host, port = split_endpoint(settings.endpoints[attempt % len(settings.endpoints)])
    common: dict[str, Any] = dict(
        host=host,
        port=port,
        timeout=settings.request_timeout_seconds,
        options=dict(CHANNEL_OPTIONS),
        connect_wait_timeout=int(max(1, settings.connect_timeout_seconds)),
    )
    if not settings.tls:
        return aetcd.Client(**common)
    assert settings.ca_file and settings.cert_file and settings.key_file
    files = CertFiles(settings.ca_file, settings.cert_file, settings.key_file)
    return TlsClient(files, dns_name(Kind.SERVICE, ETCD_IDENTITY, settings.cluster_name), **common)


@dataclass(frozen=True)
class Keyspace:
    """Keys under /ringrift/<cluster>/ (ARCHITECTURE.md §9)."""

    cluster: str

    @property
    def root(self) -> bytes:
        return f"/ringrift/{self.cluster}/".encode()

    @property
    def nodes(self) -> bytes:
        return self.root + b"nodes/"

    @property
    def services(self) -> bytes:
        return self.root + b"services/"

    @property
    def leader(self) -> bytes:
        return self.root + b"leader/"

    @property
    def quarantine(self) -> bytes:
        """Quarantined nodes, one key each under a lease that ends the quarantine."""
        return self.root + b"quarantine/"

    def node(self, node_id: str) -> bytes:
        return self.nodes + node_id.encode()

    def service(self, service: str, instance: str) -> bytes:
        return self.services + f"{service}/{instance}".encode()

    def candidate(self, lease_id: int) -> bytes:
        return self.leader + f"{lease_id:016x}".encode()
