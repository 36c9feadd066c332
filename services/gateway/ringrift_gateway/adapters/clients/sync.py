"""The gateway's client of SyncPlanner: plan and execute one sync goal, read a plan."""

from __future__ import annotations

import grpc

from ringrift.sync.v1 import sync_pb2, sync_pb2_grpc
from ringrift_runtime.grpc.calls import call, last

GOALS = {"games": sync_pb2.SYNC_GOAL_GAMES_TO_TRAINER, "models": sync_pb2.SYNC_GOAL_MODEL_TO_PLAYERS}


class SyncClient:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = sync_pb2_grpc.SyncPlannerServiceStub(channel)

    async def move(self, goal: str, config_key: str, epoch: int) -> tuple[int, int]:
        """Plan and execute one sync goal ("games" to the trainers, "models" to every
        player); (transfers done, transfers failed)."""
        plan = (
            await call(
                self._stub.CreateSyncPlan(sync_pb2.CreateSyncPlanRequest(goal=GOALS[goal], config_key=config_key))
            )
        ).plan
        if not plan.transfers:
            return 0, 0
        request = sync_pb2.ExecuteSyncPlanRequest(plan_id=plan.plan_id, epoch=epoch)
        final = await last(self._stub.ExecuteSyncPlan(request))
        return (final.transfers_done, final.transfers_failed) if final else (0, 0)

    async def plan(self, plan_id: str) -> sync_pb2.SyncPlan:
        return (await call(self._stub.GetSyncPlan(sync_pb2.GetSyncPlanRequest(plan_id=plan_id)))).plan
