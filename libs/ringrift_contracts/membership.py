"""Membership: the watched view of /ringrift/<cluster>/nodes/ and the agent's own
registration under its lease. A node is a member exactly while its key exists.

Quarantine is the control plane's word, not the agent's: a key under
/ringrift/<cluster>/quarantine/<node_id>, under a lease that ends it, written by
NodeSelector. Every view of the membership (``membership_cache``) shows such a member
with ``quarantined`` set, whatever its own record says, and tells its subscribers when
that changes."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass

from ringrift.common.v1 import common_pb2
from ringrift.nodes.v1 import nodes_pb2
from ringrift_contracts.ids import node_id_problem
from ringrift_runtime.aio import cancel_and_wait, quietly
from ringrift_runtime.cluster.cache import PrefixCache
from ringrift_runtime.cluster.etcd import Keyspace, make_client
from ringrift_runtime.cluster.leased import LeasedKey
from ringrift_runtime.cluster.model import Change, ChangeKind, Entry
from ringrift_runtime.grpc.times import to_timestamp
from ringrift_runtime.settings import EtcdSettings

log = logging.getLogger("ringrift.cluster.membership")


def _decode_node(name: str, raw: bytes) -> common_pb2.NodeInfo | None:
    problem = node_id_problem(name)
    if problem:
        log.warning("ignoring membership key %r: %s", name, problem)
        return None
    try:
        node = common_pb2.NodeInfo.FromString(raw)
    except Exception:
        log.warning("ignoring membership key %r: not a NodeInfo", name)
        return None
    if node.node_id != name:
        log.warning("ignoring membership key %r: it holds node %r", name, node.node_id)
        return None
    return node


async def member_address(settings: EtcdSettings, node_id: str) -> str | None:
    """Where node ``node_id`` is registered as a member right now (None: not a member)."""
    client = make_client(settings)
    try:
        found = await client.get(Keyspace(settings.cluster_name).node(node_id))
    finally:
        await quietly(client.close())
    node = _decode_node(node_id, found.value) if found is not None else None
    return node.address if node is not None else None


@dataclass(frozen=True)
class Quarantine:
    """Why and since when a node takes no work, and until when (its lease's end)."""

    reason: str
    since: float  # unix seconds
    until: float
    by: str  # who asked (an identity)


def quarantine_message(node_id: str, quarantine: Quarantine) -> nodes_pb2.NodeQuarantine:
    return nodes_pb2.NodeQuarantine(
        node_id=node_id,
        reason=quarantine.reason,
        since=to_timestamp(quarantine.since),
        until=to_timestamp(quarantine.until),
        by=quarantine.by,
    )


def _decode_quarantine(name: str, raw: bytes) -> Quarantine | None:
    try:
        return Quarantine(**json.loads(raw))
    except (ValueError, TypeError):
        log.warning("ignoring quarantine key %r: not a quarantine record", name)
        return None


async def quarantine_node(settings: EtcdSettings, node_id: str, reason: str, seconds: int, by: str) -> Quarantine:
    """Quarantine ``node_id`` for ``seconds`` (a new quarantine replaces the old one)."""
    now = time.time()
    record = Quarantine(reason, now, now + seconds, by)
    client = make_client(settings)
    try:
        lease = await client.lease(seconds)
        key = Keyspace(settings.cluster_name).quarantine + node_id.encode()
        await client.put(key, json.dumps(asdict(record)).encode(), lease=lease)
    finally:
        await quietly(client.close())
    return record


async def lift_quarantine(settings: EtcdSettings, node_id: str) -> bool:
    """End ``node_id``'s quarantine; whether it was quarantined."""
    client = make_client(settings)
    try:
        return bool(await client.delete(Keyspace(settings.cluster_name).quarantine + node_id.encode()))
    finally:
        await quietly(client.close())


def _marked(node: common_pb2.NodeInfo) -> common_pb2.NodeInfo:
    marked = common_pb2.NodeInfo()
    marked.CopyFrom(node)
    marked.quarantined = True
    return marked


class Membership:
    """The members (``PrefixCache`` of nodes/) with the quarantine (a cache of
    quarantine/) laid over them: the same reads and change stream as a PrefixCache."""

    def __init__(self, settings: EtcdSettings) -> None:
        keys = Keyspace(settings.cluster_name)
        self.nodes: PrefixCache[common_pb2.NodeInfo] = PrefixCache(settings, keys.nodes, _decode_node, "membership")
        self.quarantine: PrefixCache[Quarantine] = PrefixCache(
            settings, keys.quarantine, _decode_quarantine, "quarantine"
        )
        self.name = "membership"
        self._subscribers: list[asyncio.Queue[Change[common_pb2.NodeInfo]]] = []
        self._node_changes = self.nodes.subscribe()
        self._quarantine_changes = self.quarantine.subscribe()
        self._pumps: list[asyncio.Task[None]] = []

    # -- reads, as a PrefixCache --------------------------------------------------
    @property
    def ready(self) -> asyncio.Event:
        return self.nodes.ready

    @property
    def revision(self) -> int:
        """The etcd revision the view reflects (moves with a member or a quarantine change)."""
        return max(self.nodes.revision, self.quarantine.revision)

    @property
    def relists(self) -> int:
        return self.nodes.relists

    def _value(self, name: str, node: common_pb2.NodeInfo) -> common_pb2.NodeInfo:
        return _marked(node) if name in self.quarantine.entries and not node.quarantined else node

    @property
    def entries(self) -> dict[str, Entry[common_pb2.NodeInfo]]:
        entries = self.nodes.entries
        if not self.quarantine.entries:
            return entries
        return {
            name: Entry(self._value(name, e.value), e.create_revision, e.mod_revision)
            if name in self.quarantine.entries
            else e
            for name, e in entries.items()
        }

    def values(self) -> dict[str, common_pb2.NodeInfo]:
        values = self.nodes.values()
        for name in self.quarantine.entries.keys() & values.keys():
            values[name] = self._value(name, values[name])
        return values

    def quarantined(self) -> dict[str, Quarantine]:
        return self.quarantine.values()

    # -- changes ------------------------------------------------------------------
    def subscribe(self) -> asyncio.Queue[Change[common_pb2.NodeInfo]]:
        queue: asyncio.Queue[Change[common_pb2.NodeInfo]] = asyncio.Queue()
        self._subscribers.append(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Change[common_pb2.NodeInfo]]) -> None:
        if queue in self._subscribers:
            self._subscribers.remove(queue)

    def _emit(self, change: Change[common_pb2.NodeInfo]) -> None:
        for queue in self._subscribers:
            queue.put_nowait(change)

    async def _pump_nodes(self) -> None:
        while True:
            change = await self._node_changes.get()
            value = change.value
            if value is not None and change.kind is not ChangeKind.LEFT:
                value = self._value(change.name, value)
            self._emit(Change(change.kind, change.name, value, change.create_revision, change.revision))

    async def _pump_quarantine(self) -> None:
        """A quarantine set or lifted is an update of the member (when it is one)."""
        while True:
            change = await self._quarantine_changes.get()
            entry = self.nodes.entries.get(change.name)
            if entry is not None:
                value = self._value(change.name, entry.value)
                self._emit(Change(ChangeKind.UPDATED, change.name, value, entry.create_revision, change.revision))

    # -- lifecycle ----------------------------------------------------------------
    async def start(self, wait: bool = True, timeout: float = 10.0) -> None:
        self._pumps = [
            asyncio.create_task(self._pump_nodes(), name="membership-pump"),
            asyncio.create_task(self._pump_quarantine(), name="quarantine-pump"),
        ]
        await self.quarantine.start(wait=False)
        await self.nodes.start(wait=wait, timeout=timeout)

    async def wait_ready(self, warn_every: float = 5.0) -> None:
        await self.nodes.wait_ready(warn_every)

    async def stop(self) -> None:
        await self.nodes.stop()
        await self.quarantine.stop()
        for pump in self._pumps:
            await cancel_and_wait(pump)


def membership_cache(settings: EtcdSettings) -> Membership:
    return Membership(settings)


def node_registration(
    settings: EtcdSettings,
    node_id: str,
    node_info: Callable[[], Awaitable[common_pb2.NodeInfo]],
    refresh_seconds: float,
) -> LeasedKey:
    """Keep this node's NodeInfo under its lease, refreshed every ``refresh_seconds``."""
    problem = node_id_problem(node_id)
    if problem:
        raise ValueError(f"node id: {problem}")

    async def value() -> bytes:
        return (await node_info()).SerializeToString()

    return LeasedKey(settings, Keyspace(settings.cluster_name).node(node_id), value, f"node-{node_id}", refresh_seconds)
