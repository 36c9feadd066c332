"""OrchestratorService servicer: cluster status and nodes are real; the rest answers
UNIMPLEMENTED until the managers behind it land."""

from __future__ import annotations

from datetime import datetime, timezone

from google.protobuf.timestamp_pb2 import Timestamp

from ringrift.orchestrator.v1 import orchestrator_pb2, orchestrator_pb2_grpc


class OrchestratorServicer(orchestrator_pb2_grpc.OrchestratorServiceServicer):
    def __init__(self, view) -> None:
        self._view = view  # ringrift_gateway.main.ClusterView

    async def GetClusterStatus(self, request, context):
        epoch = await self._view.epoch()
        computed = Timestamp()
        computed.FromDatetime(datetime.now(timezone.utc))
        return orchestrator_pb2.GetClusterStatusResponse(
            leader_id=epoch.leader_id,
            epoch=epoch.epoch,
            services=self._view.services(),
            nodes=self._view.nodes(include_unschedulable=True),
            computed_at=computed,
            replica_id=self._view.replica_id,
        )

    async def ListNodes(self, request, context):
        return orchestrator_pb2.ListNodesResponse(nodes=self._view.nodes(request.include_unschedulable))
