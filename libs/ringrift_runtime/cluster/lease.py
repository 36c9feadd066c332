"""Lease keeper: grant a lease, keep it alive every TTL/3, detect and report its loss,
revoke it on graceful shutdown.

The keep-alives run on a dedicated thread with a blocking gRPC channel to etcd's Lease
API, never on the event loop: a long scan or an RPC burst that blocks the owner's loop
cannot cost the lease. Loss is reported to the owner's loop thread-safely.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import grpc
from aetcd import rpc

from ringrift_runtime.cluster.etcd import REQUIRE_LEADER, blocking_channel
from ringrift_runtime.settings import EtcdSettings

T = TypeVar("T")

log = logging.getLogger("ringrift.cluster.lease")


class LeaseLost(Exception):
    """The lease expired or could not be confirmed within its TTL."""


class LeaseKeeper:
    def __init__(
        self,
        settings: EtcdSettings,
        ttl: int,
        name: str,
        safety_margin: float = 0.0,
        endpoint_attempt: int = 0,
    ) -> None:
        self.ttl = ttl
        self.name = name
        self._settings = settings
        self._margin = safety_margin
        self._endpoint_index = endpoint_attempt % len(settings.endpoints)
        self.lease_id = 0
        self.granted_ttl = 0
        self._valid_until = 0.0  # monotonic time until which the lease is surely alive
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lost: asyncio.Event | None = None
        self._moved: asyncio.Event | None = None  # set (and replaced) each time a member fails
        self.lost_reason = ""
        self.keepalives = 0
        self._on_lost: list[Callable[[str], None]] = []
        self._channel: grpc.Channel | None = None

    # -- owner side (event loop) -------------------------------------------------
    async def start(self) -> int:
        """Grant the lease (raises on etcd errors) and start the keep-alive thread."""
        self._loop = asyncio.get_running_loop()
        self._lost = asyncio.Event()
        self._moved = asyncio.Event()
        granted: asyncio.Future[int] = self._loop.create_future()
        self._thread = threading.Thread(target=self._run, args=(granted,), name=f"lease-{self.name}", daemon=True)
        self._thread.start()
        return await granted

    def valid(self) -> bool:
        """True while a keep-alive confirmed the lease recently enough (TTL minus margin)."""
        return not self.lost_reason and time.monotonic() < self._valid_until

    def remaining(self) -> float:
        """Seconds the lease is surely still alive (0 once lost): the last confirmed
        keep-alive's TTL counted from before it was sent, so etcd expires it no earlier."""
        if self.lost_reason:
            return 0.0
        return max(0.0, self._valid_until - time.monotonic())

    def on_lost(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(reason)`` on the owner's loop when the lease is lost."""
        self._on_lost.append(callback)

    async def wait_lost(self) -> str:
        assert self._lost is not None, "start() first"
        await self._lost.wait()
        return self.lost_reason

    async def wait_member_failed(self) -> None:
        """Return when a keep-alive next fails on its member (it moves on to the next):
        the owner's own requests and watches on that member are likely stuck too (a member
        that hangs refuses nothing; a stream through it notices only by gRPC keepalive)."""
        assert self._moved is not None, "start() first"
        await self._moved.wait()

    async def stop(self, revoke: bool = True) -> bool:
        """Stop keeping the lease alive; revoke it so its keys vanish at once. False when
        a revocation was asked for and no member took it (the lease may outlive us)."""
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 5)
        revoked = True
        if revoke and self.lease_id and not self.lost_reason:
            revoked = await asyncio.to_thread(self._revoke)
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        return revoked

    # -- keeper thread ------------------------------------------------------------
    @property
    def _endpoint(self) -> str:
        return self._settings.endpoints[self._endpoint_index]

    def _stub(self) -> rpc.LeaseStub:
        if self._channel is None:
            self._channel = blocking_channel(self._settings, self._endpoint)
        return rpc.LeaseStub(self._channel)

    def _next_member(self) -> None:
        """Keep the lease alive through the next etcd member: a lease is the cluster's,
        not one member's, so a member's death costs one retry, not the lease."""
        if len(self._settings.endpoints) == 1:
            return  # the one channel reconnects by itself
        self._endpoint_index = (self._endpoint_index + 1) % len(self._settings.endpoints)
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    def _resolve(self, future: asyncio.Future, value=None, error: BaseException | None = None) -> None:
        def apply() -> None:
            if future.done():
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(value)

        self._call_owner(apply)

    def _each_member(self, call: Callable[[rpc.LeaseStub], T]) -> T:
        """``call`` through each member once, until one answers; the last member's error
        when none does."""
        for tried in range(len(self._settings.endpoints)):
            try:
                return call(self._stub())
            except grpc.RpcError:
                if tried + 1 == len(self._settings.endpoints):
                    raise
                self._next_member()
        raise AssertionError("unreachable: there is at least one endpoint")

    def _run(self, granted: asyncio.Future) -> None:
        timeout = self._settings.request_timeout_seconds
        sent = time.monotonic()

        def grant(stub: rpc.LeaseStub):
            nonlocal sent
            sent = time.monotonic()
            return stub.LeaseGrant(rpc.LeaseGrantRequest(TTL=self.ttl), timeout=timeout, metadata=REQUIRE_LEADER)

        try:
            reply = self._each_member(grant)
        except grpc.RpcError as exc:
            self._resolve(
                granted, error=ConnectionError(f"etcd at {self._endpoint} refused a lease: {exc.code().name}")
            )
            return
        self.lease_id, self.granted_ttl = reply.ID, reply.TTL
        self._valid_until = sent + reply.TTL - self._margin
        self._resolve(granted, self.lease_id)
        interval = self.granted_ttl / 3
        # A member that hangs (paused, or its host gone without a reset) is given up after
        # half an interval and the next member is asked at once: a lease kept alive every
        # TTL/3 is then confirmed again within TTL/3 + TTL/6 + a round trip of its last
        # confirmation, before the owner's margin runs out (TTL - margin). Waiting a whole
        # interval, then a pause, had the leader stop acting for a follower's death.
        attempt_timeout = min(timeout, interval / 2)
        next_at = time.monotonic() + interval
        failing = 0  # members that failed in a row
        while not self._stop.wait(max(0.0, next_at - time.monotonic())):
            sent = time.monotonic()
            next_at = sent + interval
            try:
                ttl = self._keepalive(timeout=attempt_timeout)
            except grpc.RpcError as exc:
                if time.monotonic() >= self._valid_until + self._margin:
                    self._report_lost(f"keep-alive failing past the TTL ({exc.code().name})")
                    return
                log.warning("lease %s keep-alive failed (%s); retrying", self.name, exc.code().name)
                self._next_member()
                self._call_owner(self._member_failed)
                failing += 1
                # The next member at once; once every member failed in turn (no raft
                # leader yet, or this process is cut off), a short pause between rounds.
                next_at = time.monotonic() + (0.0 if failing % len(self._settings.endpoints) else 0.1)
                continue
            failing = 0
            if ttl <= 0:
                self._report_lost("lease expired (TTL <= 0)")
                return
            self.keepalives += 1
            self._valid_until = sent + ttl - self._margin

    def _keepalive(self, timeout: float) -> int:
        replies = self._stub().LeaseKeepAlive(
            iter([rpc.LeaseKeepAliveRequest(ID=self.lease_id)]), timeout=timeout, metadata=REQUIRE_LEADER
        )
        for reply in replies:
            return reply.TTL
        return 0

    def _revoke(self) -> bool:
        request = rpc.LeaseRevokeRequest(ID=self.lease_id)
        timeout = self._settings.request_timeout_seconds
        try:
            self._each_member(lambda stub: stub.LeaseRevoke(request, timeout=timeout, metadata=REQUIRE_LEADER))
        except grpc.RpcError as exc:
            log.warning("lease %s could not be revoked (%s); it expires by itself", self.name, exc.code().name)
            return False
        return True

    def _member_failed(self) -> None:  # on the owner's loop
        assert self._moved is not None
        moved, self._moved = self._moved, asyncio.Event()
        moved.set()

    def _report_lost(self, reason: str) -> None:
        self.lost_reason = reason
        self._valid_until = 0.0
        log.warning("lease %s lost: %s", self.name, reason)

        def notify() -> None:
            assert self._lost is not None
            self._lost.set()
            for callback in self._on_lost:
                callback(reason)

        self._call_owner(notify)

    def _call_owner(self, callback: Callable[[], None]) -> None:
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(callback)
        except RuntimeError:  # the owner's loop is closed: nobody to tell
            pass
