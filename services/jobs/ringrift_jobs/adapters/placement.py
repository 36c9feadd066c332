"""Placement: NodeSelector's ranking."""

from __future__ import annotations

import grpc

from ringrift.nodes.v1 import nodes_pb2, nodes_pb2_grpc
from ringrift_jobs.adapters.wire import spec_message
from ringrift_jobs.domain.model import Spec
from ringrift_runtime.grpc.calls import call


class NodeSelectorPlacement:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = nodes_pb2_grpc.NodeSelectorServiceStub(channel)

    async def rank(self, spec: Spec, top_k: int, exclude: list[str], only: list[str] | None = None) -> list[str]:
        request = nodes_pb2.RankNodesRequest(
            spec=spec_message(spec), top_k=top_k, exclude_node_ids=exclude, only_node_ids=only or []
        )
        return [score.node_id for score in (await call(self._stub.RankNodes(request))).ranked]
