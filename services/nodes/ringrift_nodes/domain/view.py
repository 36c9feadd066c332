"""The selector's live view: a NodeIndex kept current from membership changes."""

from __future__ import annotations

import time
from collections.abc import Callable

from ringrift_nodes.domain.model import JobNeeds, NodeView, Reservation, Score
from ringrift_nodes.domain.scoring import NodeIndex, Selector
from ringrift_runtime.errors import NotFound
from ringrift_settings import NodeSelectorSettings


class PlacementView:
    def __init__(self, settings: NodeSelectorSettings, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.index = NodeIndex(settings)
        self.selector = Selector(self.index, settings)
        self.reservations: dict[str, Reservation] = {}
        self._clock = clock

    def active_reservations(self) -> list[Reservation]:
        now = self._clock()
        return sorted((r for r in self.reservations.values() if r.expires_at > now), key=lambda r: r.node_id)

    def upsert(self, view: NodeView) -> None:
        self.index.upsert(view)

    def remove(self, node_id: str) -> None:
        self.index.remove(node_id)

    def best(self, needs: JobNeeds, exclude: frozenset[str]) -> Score | None:
        ranked = self.selector.rank(needs, self.reservations, self._clock(), 1, exclude)
        return ranked[0] if ranked else None

    def rank(self, needs: JobNeeds, k: int, exclude: frozenset[str], only: frozenset[str] | None = None) -> list[Score]:
        return self.selector.rank(needs, self.reservations, self._clock(), k, exclude, only)

    def score(self, node_id: str, needs: JobNeeds) -> Score:
        score = self.selector.score(node_id, needs, self.reservations, self._clock())
        if score is None:
            raise NotFound(f"node {node_id} is not a member")
        return score

    def explain(self, needs: JobNeeds) -> list[Score]:
        return self.selector.explain(needs, self.reservations, self._clock())
