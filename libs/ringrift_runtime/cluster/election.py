"""Leader election among leader-eligible replicas (the standard etcd recipe).

Grant a lease; in one transaction create /ringrift/<cluster>/leader/<lease_id> if absent;
list the prefix by create revision: the lowest leads, with epoch = its create revision;
otherwise watch only the key just before ours for deletion, then list again. The leader
stops acting the moment its lease cannot be confirmed within TTL minus a safety margin,
and resigns (deletes its key, revokes its lease) on graceful shutdown. A process that
restarts gets a new lease and key: it never assumes it was leader.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import aetcd

from ringrift_runtime.aio import cancel_and_wait, quietly
from ringrift_runtime.cluster.etcd import TRANSIENT_ERRORS, EtcdClient, Keyspace, make_client
from ringrift_runtime.cluster.lease import LeaseKeeper, LeaseLost
from ringrift_runtime.cluster.model import Leadership
from ringrift_runtime.errors import NotLeader
from ringrift_runtime.settings import EtcdSettings

log = logging.getLogger("ringrift.cluster.election")

# A term shorter than this counts as a failure for the re-campaign backoff (no flapping).
STABLE_TERM_SECONDS = 10.0


Lead = Callable[[Leadership], Awaitable[None]]


class LeaderWorkFailed(Exception):
    """The leader's work ended or failed while the lease was still held."""


class LeaderElection:
    def __init__(self, settings: EtcdSettings, keyspace: Keyspace, candidate_id: str, value: bytes) -> None:
        self._settings = settings
        self._keyspace = keyspace
        self.candidate_id = candidate_id
        self._value = value
        self.leadership: Leadership | None = None
        self.terms = 0
        self._stopping = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._key: bytes | None = None
        self._keeper: LeaseKeeper | None = None
        self._on_lost: list[Callable[[Leadership, str], Awaitable[None]]] = []

    @property
    def is_leader(self) -> bool:
        return self.leadership is not None and self.leadership.acting()

    def on_lost(self, callback: Callable[[Leadership, str], Awaitable[None]]) -> None:
        """Awaited after a term ends (lead task already cancelled)."""
        self._on_lost.append(callback)

    async def start(self, lead: Lead) -> None:
        self._task = asyncio.create_task(self._campaign_forever(lead), name="election")

    async def resign(self) -> None:
        """Stop leading and campaigning; delete our key and revoke our lease."""
        self._stopping.set()
        await cancel_and_wait(self._task)

    async def _campaign_forever(self, lead: Lead) -> None:
        attempt = 0
        delay = self._settings.watch_retry_seconds
        # Our earlier leases that no member would revoke (etcd had no raft leader): their
        # keys would stand ahead of our new one until they expire, so they are revoked as
        # soon as etcd grants again.
        unrevoked: list[int] = []
        while not self._stopping.is_set():
            keeper = LeaseKeeper(
                self._settings,
                self._settings.election_ttl_seconds,
                f"election-{self.candidate_id}",
                safety_margin=self._settings.election_safety_margin_seconds,
                endpoint_attempt=attempt,
            )
            client = make_client(self._settings, attempt)
            resigned = False
            try:
                lease_id = await keeper.start()
                self._keeper = keeper
                while unrevoked:
                    await quietly(client.revoke_lease(unrevoked.pop()))
                self._key = self._keyspace.candidate(lease_id)
                await client.transaction(
                    compare=[client.transactions.create(self._key) == 0],
                    success=[client.transactions.put(self._key, self._value, lease_id)],
                    failure=[],
                )
                epoch = await self._wait_until_first(client, keeper)
                started = time.monotonic()
                try:
                    key = self._key[len(self._keyspace.leader) :].decode()
                    await self._lead_term(Leadership(epoch, self.candidate_id, keeper, key=key), lead)
                except LeaderWorkFailed:
                    if time.monotonic() - started > STABLE_TERM_SECONDS:
                        delay = self._settings.watch_retry_seconds
                    raise
                delay = self._settings.watch_retry_seconds
            except asyncio.CancelledError:
                resigned = True
                await self._resign_now(client, keeper)
                raise
            except LeaseLost as exc:
                # Deposed by the lease (pause, partition, etcd outage): campaign again at
                # once so that a candidate is always waiting.
                log.warning("election for %s interrupted: %s", self.candidate_id, exc)
                delay = self._settings.watch_retry_seconds
            except (LeaderWorkFailed, *TRANSIENT_ERRORS, ConnectionError) as exc:
                # A failing term backs off (a term shorter than STABLE_TERM_SECONDS does
                # not reset it): no flapping.
                log.warning("election for %s interrupted: %s", self.candidate_id, exc or type(exc).__name__)
            finally:
                await quietly(client.close())
                if not resigned:
                    revoked = await keeper.stop(revoke=True)
                    # A lease we stopped confirming may still be alive in etcd (a new raft
                    # leader extends every lease), and so may its key.
                    if keeper.lease_id and (not revoked or keeper.lost_reason):
                        unrevoked.append(keeper.lease_id)
            attempt += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._settings.watch_retry_max_seconds * 5)

    async def _wait_until_first(self, client: EtcdClient, keeper: LeaseKeeper) -> int:
        while True:
            listing = await client.get_prefix(self._keyspace.leader, sort_order="ascend", sort_target="create")
            keys = [kv.key for kv in listing]
            if self._key not in keys:
                raise LeaseLost("our candidate key vanished (lease expired)")
            index = keys.index(self._key)
            if index == 0:
                return listing[0].create_revision
            predecessor = keys[index - 1]
            log.info("%s waits behind %s", self.candidate_id, predecessor.decode())
            try:
                await self._wait_deleted(client, predecessor, listing.header.revision + 1, keeper)
            except (*TRANSIENT_ERRORS, ConnectionError) as exc:
                # The watch's member died or lost its leader: keep our place in the line
                # (same lease, same key) and watch again through the next member.
                log.info("%s's watch on %s broke (%s); watching again", self.candidate_id, predecessor, exc)
                await client.fail_over()
                await asyncio.sleep(self._settings.watch_retry_seconds)

    async def _wait_deleted(self, client: aetcd.Client, key: bytes, revision: int, keeper: LeaseKeeper) -> None:
        watch = await client.watch(key, start_revision=revision)

        async def deleted() -> None:
            async for event in watch:
                if event.kind == aetcd.EventKind.DELETE:
                    return
            raise ConnectionError("watch on predecessor ended")

        async def member_failed() -> None:
            # Our lease's keep-alive gave up on its member (the one this client started
            # on): a member that hangs would hold this watch silent for as long as gRPC
            # keepalive takes to notice, so watch again through the next member now.
            await keeper.wait_member_failed()
            raise ConnectionError("the lease's etcd member stopped answering")

        waiters = {
            asyncio.ensure_future(deleted()),
            asyncio.ensure_future(keeper.wait_lost()),
            asyncio.ensure_future(member_failed()),
        }
        try:
            done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            if keeper.lost_reason:
                raise LeaseLost(keeper.lost_reason)
            for task in done:
                if task.exception() is not None:
                    raise task.exception()
        finally:
            for task in waiters:
                task.cancel()
            await quietly(watch.cancel())

    async def _lead_term(self, leadership: Leadership, lead: Lead) -> None:
        self.leadership = leadership
        self.terms += 1
        log.info("%s is leader with epoch %d", self.candidate_id, leadership.epoch)
        leading = asyncio.ensure_future(lead(leadership))
        lost = asyncio.ensure_future(leadership.keeper.wait_lost())
        reason = "leader work ended"
        ended: type[Exception] = LeaderWorkFailed
        try:
            done, _ = await asyncio.wait({leading, lost}, return_when=asyncio.FIRST_COMPLETED)
            if lost in done or not leadership.keeper.valid() or isinstance(leading.exception(), NotLeader):
                reason = f"lease lost: {leadership.keeper.lost_reason or 'not confirmed within the TTL'}"
                ended = LeaseLost
            elif leading.exception() is not None:
                reason = f"leader work failed: {leading.exception()!r}"
        except asyncio.CancelledError:
            reason = "resigned"
            raise
        finally:
            leadership.deposed = True  # stop acting first
            leading.cancel()
            lost.cancel()
            await asyncio.gather(leading, return_exceptions=True)
            self.leadership = None
            log.warning("%s stopped leading epoch %d: %s", self.candidate_id, leadership.epoch, reason)
            for callback in self._on_lost:
                await quietly(callback(leadership, reason))
        raise ended(reason)

    async def _resign_now(self, client: aetcd.Client, keeper: LeaseKeeper) -> None:
        # Revoking the lease deletes our key with it, through the member the keep-alives
        # reach (this client may still be on a member that hangs); the key is deleted by
        # itself only when the lease could not be revoked or was already given up.
        revoked = await keeper.stop(revoke=True)
        if self._key is not None and (not revoked or keeper.lost_reason or not keeper.lease_id):
            await quietly(asyncio.wait_for(client.delete(self._key), self._settings.request_timeout_seconds))
