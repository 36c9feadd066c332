"""etcd connections and the RingRift keyspace."""

from __future__ import annotations

from dataclasses import dataclass

import aetcd
import grpc

from ringrift_runtime.settings import EtcdSettings

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


def make_client(settings: EtcdSettings, attempt: int = 0) -> aetcd.Client:
    """An asyncio etcd client; ``attempt`` rotates through the configured endpoints."""
    host, port = split_endpoint(settings.endpoints[attempt % len(settings.endpoints)])
    return aetcd.Client(
        host=host,
        port=port,
        timeout=settings.request_timeout_seconds,
        options=dict(CHANNEL_OPTIONS),
        connect_wait_timeout=int(max(1, settings.connect_timeout_seconds)),
    )


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

    def node(self, node_id: str) -> bytes:
        return self.nodes + node_id.encode()

    def service(self, service: str, instance: str) -> bytes:
        return self.services + f"{service}/{instance}".encode()

    def candidate(self, lease_id: int) -> bytes:
        return self.leader + f"{lease_id:016x}".encode()
