"""The gateway's client of SelfplayScheduler: per-node targets and weighted picks for the
queue, and the facade's allocation explanations."""

from __future__ import annotations

import grpc

from ringrift.selfplay.v1 import selfplay_pb2, selfplay_pb2_grpc
from ringrift_runtime.grpc.calls import call


class SelfplayClient:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = selfplay_pb2_grpc.SelfplaySchedulerServiceStub(channel)

    async def target(self, node_id: str) -> int:
        request = selfplay_pb2.GetTargetJobsForNodeRequest(node_id=node_id)
        return (await call(self._stub.GetTargetJobsForNode(request))).target_jobs

    async def pick(self, node_id: str, seed: int) -> str:
        request = selfplay_pb2.PickWeightedSelfplayConfigRequest(node_id=node_id, seed=seed)
        return (await call(self._stub.PickWeightedSelfplayConfig(request))).config_key

    async def explain_allocation(self, node_id: str) -> list[selfplay_pb2.PriorityTerms]:
        request = selfplay_pb2.ExplainAllocationRequest(node_id=node_id)
        return list((await call(self._stub.ExplainAllocation(request))).terms)
