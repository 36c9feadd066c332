"""The members as dispatch sees them, from the watched etcd membership."""

from __future__ import annotations

from collections.abc import Mapping

from ringrift_contracts.membership import Membership
from ringrift_jobs.adapters.wire import node
from ringrift_jobs.domain.model import Node


class MembershipView:
    """Node views rebuilt only when the membership changed (its revision moved, with a
    member's record or a quarantine)."""

    def __init__(self, cache: Membership) -> None:
        self._cache = cache
        self._revision = -1
        self._nodes: dict[str, Node] = {}

    def nodes(self) -> Mapping[str, Node]:
        if self._cache.revision != self._revision or len(self._nodes) != len(self._cache.entries):
            self._nodes = {name: node(entry.value) for name, entry in self._cache.entries.items()}
            self._revision = self._cache.revision
        return self._nodes
