"""Where the loops' operator state lives: the paused set in StateService (any replica
may take a pause or resume; the leader follows within a second), and the leader's
heartbeat, which carries every loop's status for the replicas that do not lead. Loop
metrics go to the gateway's Prometheus registry."""

from __future__ import annotations

import json

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ringrift_gateway.domain.leader import HEARTBEAT
from ringrift_runtime.errors import Conflict

PAUSED = ("loops", "paused")


def _names(stored) -> set[str]:
    return set(json.loads(stored.value)) if stored.found and stored.value else set()


class StatePauseStore:
    def __init__(self, state) -> None:
        self._state = state  # StateClient

    async def load(self) -> set[str]:
        return _names(await self._state.load_state(*PAUSED))

    async def set(self, name: str, paused: bool) -> set[str]:
        for _ in range(5):
            stored = await self._state.load_state(*PAUSED)
            names = _names(stored) | {name} if paused else _names(stored) - {name}
            try:
                await self._state.persist_state(*PAUSED, json.dumps(sorted(names)).encode(),
                                                stored.version if stored.found else 0, 0)
                return names
            except Conflict:
                continue  # another replica changed the set meanwhile: read it again
        raise Conflict("the paused loops kept changing; try again")


async def leader_loop_statuses(state) -> tuple[int, list[dict]]:
    """(epoch, loop statuses) as a leader last wrote them in its heartbeat."""
    stored = await state.load_state(*HEARTBEAT)
    if not stored.found or not stored.value:
        return 0, []
    value = json.loads(stored.value)
    return int(value.get("epoch", 0)), value.get("loops", [])


class PrometheusLoopMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._runs = Counter("ringrift_loop_runs_total", "Background loop rounds, by loop and outcome.",
                             ["loop", "outcome"], registry=registry)
        self._seconds = Histogram("ringrift_loop_round_seconds", "Duration of a background loop round.",
                                  ["loop"], registry=registry)
        self._errors = Gauge("ringrift_loop_consecutive_errors", "Consecutive errors of a background loop.",
                             ["loop"], registry=registry)
        self._paused = Gauge("ringrift_loop_paused", "1 while an operator has paused the loop.", ["loop"],
                             registry=registry)

    def observe(self, loop: str, outcome: str, seconds: float, consecutive_errors: int) -> None:
        self._runs.labels(loop, outcome).inc()
        self._seconds.labels(loop).observe(seconds)
        self._errors.labels(loop).set(consecutive_errors)

    def paused(self, loop: str, paused: bool) -> None:
        self._paused.labels(loop).set(1 if paused else 0)
