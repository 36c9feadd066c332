"""Membership: the watched view of /ringrift/<cluster>/nodes/ and the agent's own
registration under its lease. A node is a member exactly while its key exists."""

from __future__ import annotations

import logging
from typing import Awaitable, Callable

from ringrift.common.v1 import common_pb2
from ringrift_runtime.cluster.cache import PrefixCache
from ringrift_runtime.cluster.etcd import Keyspace
from ringrift_runtime.cluster.leased import LeasedKey
from ringrift_runtime.settings import EtcdSettings
from ringrift_runtime.validation import node_id_problem

log = logging.getLogger("ringrift.cluster.membership")


def _decode_node(name: str, raw: bytes) -> common_pb2.NodeInfo | None:
    problem = node_id_problem(name)
    if problem:
        log.warning("ignoring membership key %r: %s", name, problem)
        return None
    try:
        node = common_pb2.NodeInfo.FromString(raw)
    except Exception:  # noqa: BLE001
        log.warning("ignoring membership key %r: not a NodeInfo", name)
        return None
    if node.node_id != name:
        log.warning("ignoring membership key %r: it holds node %r", name, node.node_id)
        return None
    return node


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
