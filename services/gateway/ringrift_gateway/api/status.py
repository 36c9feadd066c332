"""Cluster status as the facade answers it: computed at most once per ``ttl`` seconds,
with concurrent callers sharing one computation (BEHAVIOUR.md lesson 5), from this
replica's watched membership and service caches plus one StateService statistics call,
the registry's best models and the loops (this replica's own when it leads, else as the
leader last reported them in its heartbeat)."""

from __future__ import annotations

from ringrift.orchestrator.v1 import orchestrator_pb2
from ringrift_contracts.tables import LOOP_HEALTH
from ringrift_gateway.adapters.clients.state import StateClient
from ringrift_gateway.adapters.loop_store import leader_loop_statuses
from ringrift_gateway.domain.loops import LoopManager, LoopStatus
from ringrift_runtime.aio import SingleFlight
from ringrift_runtime.grpc.times import now, to_timestamp


def loop_status(status: LoopStatus) -> orchestrator_pb2.LoopStatus:
    return orchestrator_pb2.LoopStatus(
        name=status.name,
        health=LOOP_HEALTH.value(status.health.value) or orchestrator_pb2.LOOP_HEALTH_UNSPECIFIED,
        interval_seconds=status.interval,
        runs=status.runs,
        consecutive_errors=status.consecutive_errors,
        last_error=status.last_error,
        last_run_at=to_timestamp(status.last_run_at),
        next_run_at=to_timestamp(status.next_run_at),
    )


class ClusterStatus:
    def __init__(self, view, state: StateClient, loops: LoopManager, ttl: float, insecure: bool = False) -> None:
        self._insecure = insecure  # this replica runs with security off
        self._view = view  # ringrift_gateway.main.ClusterView
        self._state = state
        self._loops = loops  # LoopManager
        self._flight = SingleFlight(self._compute, ttl)

    @property
    def computations(self) -> int:
        return self._flight.computations

    async def get(self) -> orchestrator_pb2.GetClusterStatusResponse:
        return await self._flight.get()

    async def loops(self) -> list[LoopStatus]:
        """Every loop: this replica's records while it leads, else the current leader's last
        report. A report from an earlier epoch is a deposed (or dead) leader's: until the
        new leader reports, its loops, like any it did not report, show as stopped."""
        if self._loops.leading:
            return self._loops.statuses()
        reported_epoch, reported = await leader_loop_statuses(self._state)
        if reported_epoch != (await self._view.epoch()).epoch:
            reported = []
        by_name = {r.name: r for r in reported}
        return [by_name.get(name, self._loops.records[name].stopped()) for name in self._loops.names]

    async def _compute(self) -> orchestrator_pb2.GetClusterStatusResponse:
        stats = await self._state.cluster_stats()
        best = await self._state.best_model_ids()
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
            insecure=self._insecure,
        )
