"""Membership: the watched view of /ringrift/<cluster>/nodes/ and the agent's own
registration under its lease. A node is a member exactly while its key exists."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from ringrift.common.v1 import common_pb2
from ringrift_contracts.ids import node_id_problem
from ringrift_runtime.aio import quietly
from ringrift_runtime.cluster.cache import PrefixCache
from ringrift_runtime.cluster.etcd import Keyspace, make_client
from ringrift_runtime.cluster.leased import LeasedKey
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


def membership_cache(settings: EtcdSettings) -> PrefixCache[common_pb2.NodeInfo]:
    return PrefixCache(settings, Keyspace(settings.cluster_name).nodes, _decode_node, "membership")


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
