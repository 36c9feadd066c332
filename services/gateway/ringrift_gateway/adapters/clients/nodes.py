"""The gateway's client of NodeSelector (the facade's placement explanations)."""

from __future__ import annotations

import grpc

from ringrift.common.v1 import common_pb2 as C
from ringrift.nodes.v1 import nodes_pb2, nodes_pb2_grpc
from ringrift_runtime.grpc.calls import call


class NodesClient:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = nodes_pb2_grpc.NodeSelectorServiceStub(channel)

    async def quarantine(self, node_id: str, reason: str, seconds: int) -> nodes_pb2.NodeQuarantine:
        request = nodes_pb2.QuarantineNodeRequest(node_id=node_id, reason=reason, duration_seconds=seconds)
        return (await call(self._stub.QuarantineNode(request))).quarantine

    async def lift_quarantine(self, node_id: str) -> bool:
        return (await call(self._stub.LiftQuarantine(nodes_pb2.LiftQuarantineRequest(node_id=node_id)))).lifted

    async def explain(self, spec: C.JobSpec) -> list[nodes_pb2.NodeScore]:
        return list((await call(self._stub.ExplainPlacement(nodes_pb2.ExplainPlacementRequest(spec=spec)))).scores)
