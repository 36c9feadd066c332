"""The gateway's client of NodeSelector (the facade's placement explanations)."""

from __future__ import annotations

import grpc

from ringrift.common.v1 import common_pb2 as C
from ringrift.nodes.v1 import nodes_pb2, nodes_pb2_grpc
from ringrift_runtime.grpc.calls import call


class NodesClient:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = nodes_pb2_grpc.NodeSelectorServiceStub(channel)

    async def explain(self, spec: C.JobSpec) -> list[nodes_pb2.NodeScore]:
        return list((await call(self._stub.ExplainPlacement(nodes_pb2.ExplainPlacementRequest(spec=spec)))).scores)
