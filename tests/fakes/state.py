"""A stand-in for StateService as agents use it: the highest epoch issued, served over
real gRPC with the state service's certificate."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ringrift.state.v1 import state_pb2, state_pb2_grpc
from ringrift_contracts import access
from ringrift_runtime.grpc.server import registration
from ringrift_runtime.security.identity import service
from ringrift_runtime.testing.inprocess import serve_in_process
from ringrift_runtime.testing.pki import TestPki
from ringrift_settings import RingriftSettings


class IssuedEpochs(state_pb2_grpc.StateServiceServicer):
    def __init__(self, epoch: int, leader_id: str = "gw") -> None:
        self.epoch, self.leader_id = epoch, leader_id
        self.asked = 0

    async def GetClusterEpoch(self, request, context):
        self.asked += 1
        return state_pb2.GetClusterEpochResponse(epoch=self.epoch, leader_id=self.leader_id)


@asynccontextmanager
async def serve_issued_epochs(pki: TestPki, epoch: int) -> AsyncIterator[tuple[IssuedEpochs, str]]:
    """(the stand-in, its address)."""
    issued = IssuedEpochs(epoch)
    settings = RingriftSettings(
        server={"port": 0}, metrics={"enabled": False}, etcd={"cluster_name": pki.cluster},
        security=pki.security(service("state", pki.cluster)),
    )  # fmt: skip
    served = [registration("ringrift.state.v1.StateService", issued)]
    async with serve_in_process(served, settings, access=access) as host:
        yield issued, host.address
