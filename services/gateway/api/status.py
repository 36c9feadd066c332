"""Cluster status as the facade answers it: computed at most once per ``ttl`` seconds,
with concurrent callers sharing one computation (BEHAVIOUR.md lesson 5), from this
replica's watched membership and service caches plus one StateService statistics call,
the registry's best models and the loops (this replica's own when it leads, else as the
leader last reported them in its heartbeat)."""

from __future__ import annotations

from ringrift.orchestrator.v1 import orchestrator_pb2
from ringrift_gateway.adapters.loop_store import leader_loop_statuses
from ringrift_runtime.aio import SingleFlight
from ringrift_runtime.grpc.times import now, to_timestamp

HEALTH = {
    "HEALTHY": orchestrator_pb2.LOOP_HEALTH_HEALTHY,
    "DEGRADED": orchestrator_pb2.LOOP_HEALTH_DEGRADED,
    "PAUSED": orchestrator_pb2.LOOP_HEALTH_PAUSED,
    "STOPPED": orchestrator_pb2.LOOP_HEALTH_STOPPED,
}


def loop_status(record: dict) -> orchestrator_pb2.LoopStatus:
    return orchestrator_pb2.LoopStatus(
        name=record["name"], health=HEALTH.get(record.get("health", ""), orchestrator_pb2.LOOP_HEALTH_UNSPECIFIED),
        interval_seconds=record.get("interval_seconds", 0.0), runs=record.get("runs", 0),
        consecutive_errors=record.get("consecutive_errors", 0), last_error=record.get("last_error", ""),
        last_run_at=to_timestamp(record.get("last_run_at")), next_run_at=to_timestamp(record.get("next_run_at")),
    )


class ClusterStatus:
    def __init__(self, view, managers, state, loops, ttl: float) -> None:
        self._view = view  # ringrift_gateway.main.ClusterView
        self._managers = managers
        self._state = state  # StateClient
        self._loops = loops  # LoopManager
        self._flight = SingleFlight(self._compute, ttl)

    @property
    def computations(self) -> int:
        return self._flight.computations

    async def get(self) -> orchestrator_pb2.GetClusterStatusResponse:
        return await self._flight.get()

    async def loops(self) -> list[dict]:
        """Every loop: this replica's records while it leads, else the current leader's last
        report. A report from an earlier epoch is a deposed (or dead) leader's: until the
        new leader reports, its loops, like any it did not report, show as stopped."""
        if self._loops.leading:
            return self._loops.statuses()
        reported_epoch, reported = await leader_loop_statuses(self._state)
        if reported_epoch != (await self._view.epoch()).epoch:
            reported = []
        by_name = {r.get("name"): r for r in reported}
        return [by_name.get(name, {**self._loops.records[name].as_dict(), "health": "STOPPED"})
                for name in self._loops.names]

    async def _compute(self) -> orchestrator_pb2.GetClusterStatusResponse:
        stats = await self._managers.cluster_stats()
        best = await self._managers.best_models()
        loops = await self.loops()
        return orchestrator_pb2.GetClusterStatusResponse(
            leader_id=stats.leader_id,
            epoch=stats.epoch,
            services=self._view.services(),
            nodes=self._view.nodes(include_unschedulable=True),
            jobs=stats.jobs,
            loops=[loop_status(r) for r in loops],
            best_model_by_config=best,
            games_by_config=dict(stats.games_by_config),
            computed_at=to_timestamp(now()),
            replica_id=self._view.replica_id,
        )
