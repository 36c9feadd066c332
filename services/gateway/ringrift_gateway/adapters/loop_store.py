"""Where the loops' operator state lives: the paused set in StateService (any replica
may take a pause or resume; the leader follows within a second), and the leader's
heartbeat, which carries every loop's status for the replicas that do not lead. Loop
metrics go to the gateway's Prometheus registry."""

from __future__ import annotations

import json

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ringrift_gateway.adapters.clients.state import StateClient
from ringrift_gateway.domain.leader import HEARTBEAT
from ringrift_gateway.domain.loops import LoopStatus

PAUSED = ("loops", "paused")


def _names(value: bytes) -> set[str]:
    return set(json.loads(value)) if value else set()


class StatePauseStore:
    def __init__(self, state: StateClient) -> None:
        self._state = state

    async def load(self) -> set[str]:
        stored = await self._state.load_state(*PAUSED)
        return _names(stored.value if stored.found else b"")

    async def set(self, name: str, paused: bool) -> set[str]:
        def change(value: bytes) -> bytes:
            names = _names(value) | {name} if paused else _names(value) - {name}
            return json.dumps(sorted(names)).encode()

        return _names(await self._state.update_state(*PAUSED, change))


async def leader_loop_statuses(state: StateClient) -> tuple[int, list[LoopStatus]]:
    """(epoch, loop statuses) as a leader last wrote them in its heartbeat."""
    stored = await state.load_state(*HEARTBEAT)
    if not stored.found or not stored.value:
        return 0, []
    value = json.loads(stored.value)
    return int(value.get("epoch", 0)), [LoopStatus.from_json(loop) for loop in value.get("loops", [])]


class PrometheusLoopMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._runs = Counter(
            "ringrift_loop_runs_total",
            "Background loop rounds, by loop and outcome.",
            ["loop", "outcome"],
            registry=registry,
        )
        self._seconds = Histogram(
            "ringrift_loop_round_seconds", "Duration of a background loop round.", ["loop"], registry=registry
        )
        self._errors = Gauge(
            "ringrift_loop_consecutive_errors", "Consecutive errors of a background loop.", ["loop"], registry=registry
        )
        self._paused = Gauge(
            "ringrift_loop_paused", "1 while an operator has paused the loop.", ["loop"], registry=registry
        )

    def observe(self, loop: str, outcome: str, seconds: float, consecutive_errors: int) -> None:
        self._runs.labels(loop, outcome).inc()
        self._seconds.labels(loop).observe(seconds)
        self._errors.labels(loop).set(consecutive_errors)

    def paused(self, loop: str, paused: bool) -> None:
        self._paused.labels(loop).set(1 if paused else 0)
