"""What the gateway's domain needs from the outside, as Protocols. The watched
membership hands out ``ringrift.common.v1.NodeInfo`` values, which the domain reads by
attribute only (``Node`` names the attributes it reads)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ringrift_runtime.cluster.model import Change, Entry


class Node(Protocol):
    node_id: str
    draining: bool
    quarantined: bool
    job_kinds: Any  # the job kinds it runs (empty: any)
    detected: Any  # its detected capabilities (.gpu.count, ...)
    metrics: Any  # its live metrics (.gpu_utilization_percent, ...)


class Membership(Protocol):
    """The watched membership of the cluster (etcd)."""

    entries: Mapping[str, Entry[Any]]

    def values(self) -> dict[str, Any]: ...

    def subscribe(self) -> asyncio.Queue[Change[Any]]: ...

    def unsubscribe(self, queue: asyncio.Queue[Change[Any]]) -> None: ...


@dataclass(frozen=True)
class EventView:
    """An event of the log as the loops read it; ``type`` by name ("NODE_JOINED")."""

    sequence: int
    type: str
    subject: str
    attributes: dict[str, str] = field(default_factory=dict)


class VersionedValue(Protocol):
    found: bool
    value: bytes
    version: int
