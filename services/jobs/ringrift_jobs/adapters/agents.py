"""The node agents, one reused channel per address (the runtime's channel pool)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from ringrift.agent.v1 import agent_pb2, agent_pb2_grpc
from ringrift_contracts.jobparams import DATA_SUBTREES, ParamSpec
from ringrift_contracts.tables import PARAM_TYPES
from ringrift_jobs.adapters.wire import spec_message
from ringrift_jobs.domain.model import Job, LogChunk, Node
from ringrift_runtime.grpc.calls import call, stream
from ringrift_runtime.grpc.client import ChannelPool

NUMERIC = frozenset({agent_pb2.PARAM_TYPE_INT, agent_pb2.PARAM_TYPE_FLOAT})


def param_spec(message: agent_pb2.ParamSpec) -> ParamSpec:
    numeric = message.type in NUMERIC
    return ParamSpec(
        message.name,
        PARAM_TYPES.name(message.type, "string"),
        message.required,
        message.default_value or None,
        message.min if numeric else None,
        message.max if numeric else None,
        message.pattern or None,
        under=tuple(message.under) or DATA_SUBTREES,
        allow_leading_dash=message.allow_leading_dash,
    )


class AgentClients:
    def __init__(self, pool: ChannelPool) -> None:
        self._pool = pool

    def _stub(self, node: Node) -> agent_pb2_grpc.NodeAgentServiceStub:
        return agent_pb2_grpc.NodeAgentServiceStub(self._pool.agent(node.address, node.node_id))

    async def run(self, node: Node, job: Job, epoch: int, gpu_indices: list[int]) -> None:
        request = agent_pb2.RunJobRequest(
            job_id=job.job_id, attempt=job.attempt, spec=spec_message(job.spec), epoch=epoch, gpu_indices=gpu_indices
        )
        await call(self._stub(node).RunJob(request))

    async def cancel(self, node: Node, job_id: str, attempt: int, epoch: int) -> None:
        request = agent_pb2.CancelJobRequest(job_id=job_id, attempt=attempt, epoch=epoch)
        await call(self._stub(node).CancelJob(request))

    async def templates(self, node: Node) -> dict[str, dict[str, ParamSpec]]:
        reply = await call(self._stub(node).ListJobTemplates(agent_pb2.ListJobTemplatesRequest()))
        return {t.kind: {p.name: param_spec(p) for p in t.params} for t in reply.templates}

    async def logs(self, node: Node, job_id: str, attempt: int, follow: bool) -> AsyncIterator[LogChunk]:
        request = agent_pb2.StreamJobLogsRequest(job_id=job_id, attempt=attempt, follow=follow)
        async for chunk in stream(self._stub(node).StreamJobLogs(request)):
            yield LogChunk(chunk.stream, chunk.data)

    async def close(self) -> None:
        await self._pool.close()
