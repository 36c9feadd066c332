"""etcd connections and the RingRift keyspace."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aetcd
import grpc
from aetcd import rpc, watcher

from ringrift_runtime.security.identity import Kind, dns_name
from ringrift_runtime.security.tls import CertFiles, channel_credentials
from ringrift_runtime.settings import EtcdSettings

log = logging.getLogger("ringrift.cluster.etcd")

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


# Ask etcd to refuse (UNAVAILABLE, "no leader") rather than serve a request or hold a
# watch open on a member cut off from its cluster's leader, as etcd's own clientv3 does
# with WithRequireLeader: the client then moves on to another member.
REQUIRE_LEADER = (("hasleader", "true"),)

# Errors after which a request is tried again on the next member: the member is gone,
# unreachable, or has no leader. A request that timed out may have been applied; every
# request RingRift retries is idempotent or a compare-and-swap that reads its own effect.
FAILOVER_ERRORS: tuple[type[BaseException], ...] = (aetcd.ConnectionFailedError, aetcd.ConnectionTimeoutError)

# The unary requests that move on to the next member on FAILOVER_ERRORS (watches are
# re-established by their owners, which re-list from the next member).
FAILOVER_METHODS = (
    "get", "get_prefix", "get_range", "get_all", "put", "delete", "delete_prefix", "delete_range",
    "transaction", "lease", "revoke_lease", "refresh_lease", "get_lease_info", "status", "compact",
)  # fmt: skip


class EtcdClient(aetcd.Client):
    """aetcd's client over every member of the cluster: it talks to one member and moves on
    to the next when that member dies, cannot be reached or has lost its leader, retrying
    the request there (aetcd 1.0 knows one endpoint), and over mutual TLS when ``files`` are
    given (aetcd opens only plaintext channels), presenting this process's certificate and
    accepting only etcd's (``server_name``)."""

    def __init__(
        self,
        endpoints: list[str],
        first: int = 0,
        files: CertFiles | None = None,
        server_name: str = "",
        failover_seconds: float = 3.0,
        **kwargs: Any,
    ) -> None:
        self._endpoints = list(endpoints)
        self._index = first % len(self._endpoints)
        host, port = split_endpoint(self._endpoints[self._index])
        super().__init__(host=host, port=port, **kwargs)
        self._files = files
        self._server_name = server_name
        self._failover_seconds = failover_seconds
        self._generation = 0  # bumped on each move to another member
        self.failovers = 0

    @property
    def endpoint(self) -> str:
        return self._endpoints[self._index]

    async def connect(self) -> None:
        if self._connected.is_set():
            return
        if self._is_connecting:  # another task is connecting: wait for it
            await asyncio.wait_for(self._connected.wait(), self._connect_wait_timeout)
            return
        try:
            self._is_connecting = True
            self._host, self._port = split_endpoint(self.endpoint)
            target = f"{self._host}:{self._port}"
            if self._files is None:
                self.channel = grpc.aio.insecure_channel(target, options=list(self._options.items()))
            else:
                options = [*self._options.items(), ("grpc.ssl_target_name_override", self._server_name)]
                self.channel = grpc.aio.secure_channel(target, channel_credentials(self._files), options=options)
            self.metadata = REQUIRE_LEADER
            self.kvstub = rpc.KVStub(self.channel)
            self.clusterstub = rpc.ClusterStub(self.channel)
            self.leasestub = rpc.LeaseStub(self.channel)
            self.maintenancestub = rpc.MaintenanceStub(self.channel)
            self._watcher = watcher.Watcher(rpc.WatchStub(self.channel), timeout=self._timeout, metadata=self.metadata)
            self._connected.set()
        finally:
            self._is_connecting = False

    async def fail_over(self, generation: int | None = None) -> None:
        """Move on to the next member (unless another request already did since
        ``generation``); the next request connects there."""
        if generation is not None and generation != self._generation:
            return
        self._generation += 1
        self.failovers += 1
        previous = self.endpoint
        self._index = (self._index + 1) % len(self._endpoints)
        log.info("etcd member %s failed; moving on to %s", previous, self.endpoint)
        await self.close()


def _failing_over(name: str) -> Callable[..., Awaitable[Any]]:
    method = getattr(aetcd.Client, name)

    @functools.wraps(method)
    async def call(self: EtcdClient, *args: Any, **kwargs: Any) -> Any:
        deadline = time.monotonic() + self._failover_seconds
        tries = 0
        while True:
            generation = self._generation
            try:
                return await method(self, *args, **kwargs)
            except aetcd.ClientError as exc:
                moved = generation != self._generation  # another request moved on under us
                if not moved and not isinstance(exc, FAILOVER_ERRORS):
                    raise
                tries += 1
                # Every member once, and on until the deadline (a new raft leader takes
                # about an election timeout to emerge).
                if tries >= len(self._endpoints) and time.monotonic() >= deadline:
                    raise
                if not moved:
                    await self.fail_over(generation)
                if tries >= len(self._endpoints):
                    await asyncio.sleep(min(0.05 * tries, 0.25))

    return call


for _name in FAILOVER_METHODS:
    setattr(EtcdClient, _name, _failing_over(_name))


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


def make_client(settings: EtcdSettings, attempt: int = 0) -> EtcdClient:
    """An asyncio etcd client over every configured member (mutual TLS unless insecure),
    starting at member ``attempt`` (modulo their number): owners that reconnect after an
    error pass their attempt count, so they start on the next member."""
    files = None
    if settings.tls:
        assert settings.ca_file and settings.cert_file and settings.key_file
        files = CertFiles(settings.ca_file, settings.cert_file, settings.key_file)
    return EtcdClient(
        settings.endpoints,
        first=attempt,
        files=files,
        server_name=dns_name(Kind.SERVICE, ETCD_IDENTITY, settings.cluster_name),
        failover_seconds=2 * settings.request_timeout_seconds,
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
