"""What the gateway does while it leads: register its epoch with StateService before
anything else, announce itself, turn membership changes into NODE_JOINED/NODE_LEFT
events (once each, fenced), write a fenced heartbeat (which carries the loops' status
for the other replicas), and run the background loops (LoopManager). Every act first checks that
the lease is still confirmed and carries the epoch; a STALE_EPOCH answer ends the term."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol, TypeVar

from ringrift_gateway.domain.loops import LoopManager
from ringrift_gateway.domain.loops.jobs import DISPATCH_EVENTS, DISPATCHER, DispatchWakes
from ringrift_gateway.domain.ports import EventView, Membership, VersionedValue
from ringrift_runtime.cluster.model import Change, ChangeKind, Leadership
from ringrift_runtime.errors import Conflict, DependencyUnavailable, RingriftError, StaleEpoch
from ringrift_settings import GatewaySettings

log = logging.getLogger("ringrift.gateway.leader")

T = TypeVar("T")
HEARTBEAT = ("cluster", "leader")
MEMBER_EVENTS = ["NODE_JOINED", "NODE_LEFT"]
FOLLOW_RETRY_MAX_SECONDS = 5.0


class _Count(Protocol):
    def inc(self) -> None: ...


class ActCounter(Protocol):
    """The ``ringrift_leader_acts_total`` counter, by outcome."""

    def labels(self, outcome: str) -> _Count: ...


class LeaderState(Protocol):
    """StateService as the leader uses it."""

    async def claim_epoch(self, leader_key: str) -> tuple[int, int]:
        """(epoch issued to this key, epoch before)."""
        ...

    async def get_epoch(self) -> Any: ...

    async def publish(
        self,
        event_type: str,
        subject: str,
        epoch: int,
        idempotency_key: str = "",
        attributes: dict[str, str] | None = None,
    ) -> Any: ...

    async def events_after(self, after: int, types: list[str]) -> list[EventView]: ...

    def follow_events(self, types: list[str]) -> AsyncIterator[EventView]:
        """Events of the named types from now on, a stream."""
        ...

    async def record_nodes(self, alive: list[Any], departed: list[str], epoch: int) -> None: ...

    async def load_state(self, namespace: str, key: str) -> VersionedValue: ...

    async def persist_state(self, namespace: str, key: str, value: bytes, expected_version: int, epoch: int) -> int: ...


def joined_key(node_id: str, create_revision: int) -> str:
    return f"node-joined/{node_id}/{create_revision}"


def left_key(node_id: str, create_revision: int) -> str:
    return f"node-left/{node_id}/{create_revision}"


class LeaderDuties:
    def __init__(
        self,
        state: LeaderState,
        members: Membership,
        replica_id: str,
        settings: GatewaySettings,
        acts: ActCounter,
        loops: LoopManager,
        wakes: DispatchWakes | None = None,
    ) -> None:
        self._state = state
        self._members = members
        self._replica_id = replica_id
        self._settings = settings
        self._heartbeat_seconds = settings.leader_heartbeat_seconds
        self._acts = acts
        self.loops = loops
        self._wakes = wakes or DispatchWakes(loops)

    async def act(self, leadership: Leadership, what: str, operation: Callable[[], Awaitable[T]]) -> T:
        """Run one fenced mutation, only while the lease is confirmed. Told our epoch is
        stale, check with StateService before resigning: a node that claims a higher epoch
        than was ever issued does not end a genuine term."""
        leadership.require()
        try:
            result = await operation()
        except StaleEpoch as exc:
            self._acts.labels("stale").inc()
            if await self._still_current(leadership):
                raise DependencyUnavailable(
                    f"{what} was refused with an epoch above the issued one ({exc.highest}); still leading"
                ) from None
            leadership.deposed = True
            log.warning("%s refused as stale: epoch %d was superseded", what, leadership.epoch)
            raise
        self._acts.labels("accepted").inc()
        return result

    async def _still_current(self, leadership: Leadership) -> bool:
        try:
            record = await self._state.get_epoch()
        except RingriftError:
            return False  # cannot check: do as told
        current = record.epoch == leadership.epoch and record.leader_id == self._replica_id
        if current:
            log.error(
                "a refusal claimed epoch %d is stale, but StateService issued it to us and no later one",
                leadership.epoch,
            )
        return bool(current)

    async def act_until_done(self, leadership: Leadership, what: str, operation: Callable[[], Awaitable[T]]) -> T:
        """``act`` retried while StateService is unreachable: a dependency outage must
        not end the term (that would make leadership flap)."""
        delay = 0.1
        while True:
            try:
                return await self.act(leadership, what, operation)
            except DependencyUnavailable as exc:
                log.warning("%s postponed: %s", what, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def lead(self, leadership: Leadership) -> None:
        self.loops.starting(True)
        try:
            await self._register_epoch(leadership)
            epoch = leadership.epoch
            await self.act_until_done(
                leadership,
                "announce",
                lambda: self._state.publish("LEADER_ELECTED", self._replica_id, epoch, f"leader-elected/{epoch}"),
            )
            changes = self._members.subscribe()
            try:
                await self._reconcile_members(leadership)
                await asyncio.gather(
                    self._heartbeat(leadership),
                    self._follow_members(leadership, changes),
                    self._dispatch_on_events(),
                    self.loops.run(lambda what, operation: self.act(leadership, what, operation), epoch),
                )
            finally:
                self._members.unsubscribe(changes)
        finally:
            self.loops.starting(False)

    async def _register_epoch(self, leadership: Leadership) -> None:
        """Claim the term's epoch from StateService before acting (it checks in etcd that our
        key leads); retry while StateService is unreachable."""
        delay = 0.1
        while True:
            leadership.require()
            try:
                epoch, previous = await self._state.claim_epoch(leadership.key)
                leadership.epoch = epoch
                log.info("epoch %d claimed for key %s (previous %d)", epoch, leadership.key, previous)
                return
            except DependencyUnavailable as exc:
                log.warning("cannot claim the epoch of key %s yet: %s", leadership.key, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)

    async def _publish_member(
        self, leadership: Leadership, kind: ChangeKind, node_id: str, revision: int, node: Any = None
    ) -> None:
        """The membership event, and the node in StateService's record of nodes seen."""
        if kind == ChangeKind.JOINED:
            event_type, key = "NODE_JOINED", joined_key(node_id, revision)
            alive, departed = ([node] if node is not None else []), []
        else:
            event_type, key = "NODE_LEFT", left_key(node_id, revision)
            alive, departed = [], [node_id]
        await self.act_until_done(
            leadership, f"record {node_id}", lambda: self._state.record_nodes(alive, departed, leadership.epoch)
        )
        await self.act_until_done(
            leadership,
            f"{kind.value} {node_id}",
            lambda: self._state.publish(event_type, node_id, leadership.epoch, key, {"create_revision": str(revision)}),
        )

    async def _reconcile_members(self, leadership: Leadership) -> None:
        """Events for what changed while nobody led: members not announced yet joined,
        announced members no longer present left."""
        announced: dict[str, tuple[str, int]] = {}  # node -> (event type, create revision)
        events = await self.act_until_done(
            leadership, "read membership events", lambda: self._state.events_after(0, MEMBER_EVENTS)
        )
        for event in events:
            announced[event.subject] = (event.type, int(event.attributes.get("create_revision", "0")))
        current = {name: entry.create_revision for name, entry in self._members.entries.items()}
        for node_id, (event_type, revision) in announced.items():
            if event_type == "NODE_JOINED" and current.get(node_id) != revision:
                await self._publish_member(leadership, ChangeKind.LEFT, node_id, revision)
        for node_id, revision in current.items():
            node = self._members.entries[node_id].value if node_id in self._members.entries else None
            await self._publish_member(leadership, ChangeKind.JOINED, node_id, revision, node)

    async def _dispatch_on_events(self) -> None:
        """JobDispatcher runs on every submission, retry and ending job (BEHAVIOUR.md:
        no poll sets the latency): each such event in StateService's stream wakes it,
        unless this replica woke it for that submission already (DispatchWakes). A broken
        stream is opened again; its safety round covers the gap."""
        delay = 0.1
        while True:
            try:
                async for event in self._state.follow_events(DISPATCH_EVENTS):
                    self._wakes.event(event.type, event.subject)
                    delay = 0.1
            except RingriftError as exc:
                log.warning("job events not followed (%s); dispatch runs on its safety round meanwhile", exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, FOLLOW_RETRY_MAX_SECONDS)

    async def _follow_members(self, leadership: Leadership, changes: asyncio.Queue[Change[Any]]) -> None:
        while True:
            change = await changes.get()
            if change.kind is ChangeKind.JOINED:
                self.loops.wake(DISPATCHER)  # a new node: pending jobs may fit now
            if change.kind in (ChangeKind.JOINED, ChangeKind.LEFT):
                await self._publish_member(leadership, change.kind, change.name, change.create_revision, change.value)

    def _writer(self, leadership: Leadership, value: bytes, version: int) -> Callable[[], Awaitable[int]]:
        return lambda: self._state.persist_state(*HEARTBEAT, value, version, leadership.epoch)

    async def _heartbeat(self, leadership: Leadership) -> None:
        version = (
            await self.act_until_done(leadership, "read heartbeat", lambda: self._state.load_state(*HEARTBEAT))
        ).version
        while True:
            value = json.dumps(
                {
                    "leader_id": self._replica_id,
                    "epoch": leadership.epoch,
                    "at": time.time(),
                    "loops": [s.to_json() for s in self.loops.statuses()],  # what ListLoops answers on the others
                }
            ).encode()
            try:
                version = await self.act(leadership, "heartbeat", self._writer(leadership, value, version))
            except Conflict:
                version = (
                    await self.act_until_done(leadership, "read heartbeat", lambda: self._state.load_state(*HEARTBEAT))
                ).version
                continue
            except DependencyUnavailable as exc:
                log.warning("heartbeat not written: %s", exc)
            await asyncio.sleep(self._heartbeat_seconds)
