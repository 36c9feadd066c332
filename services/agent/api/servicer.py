"""NodeAgentService servicer. Mutating calls are fenced: an epoch below the highest seen
is refused with FAILED_PRECONDITION / STALE_EPOCH before anything else happens. Job
execution and file transfer answer UNIMPLEMENTED until they land."""

from __future__ import annotations

from ringrift.agent.v1 import agent_pb2, agent_pb2_grpc
from ringrift_runtime.errors import NotImplementedYet
from ringrift_runtime.fencing import FileEpochFence
from ringrift_runtime.validation import Validator


def _require_epoch(epoch: int) -> None:
    check = Validator()
    check.check("epoch", epoch > 0, "is required: this call is made on behalf of the leader")
    check.raise_if_invalid()


class NodeAgentServicer(agent_pb2_grpc.NodeAgentServiceServicer):
    def __init__(self, fence: FileEpochFence, node_info) -> None:
        self._fence = fence
        self._node_info = node_info

    async def GetNodeInfo(self, request, context):
        return agent_pb2.GetNodeInfoResponse(node=await self._node_info(), max_epoch_seen=self._fence.highest)

    async def _fenced(self, epoch: int, what: str):
        _require_epoch(epoch)
        await self._fence.admit(epoch)
        raise NotImplementedYet(f"{what} is not implemented by this agent yet")

    async def RunJob(self, request, context):
        await self._fenced(request.epoch, "RunJob")

    async def CancelJob(self, request, context):
        await self._fenced(request.epoch, "CancelJob")

    async def PullFile(self, request, context):
        await self._fenced(request.epoch, "PullFile")
        yield  # pragma: no cover - makes this a server-streaming handler
