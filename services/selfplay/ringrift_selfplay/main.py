"""Composition root of the self-play scheduler: build(settings) -> app; nothing built at import."""

from __future__ import annotations

import sys

from ringrift.common.v1 import common_pb2
from ringrift_contracts import access
from ringrift_contracts.membership import membership_cache
from ringrift_contracts.nodes import cpu_cores, effective_gpu, ram_mb
from ringrift_contracts.tables import role_names
from ringrift_runtime.grpc.client import ChannelFactory
from ringrift_runtime.grpc.contracts import SERVICE_BY_PROCESS
from ringrift_runtime.grpc.server import Bound, registration
from ringrift_runtime.process import run_service
from ringrift_runtime.security.context import Security
from ringrift_runtime.security.identity import Kind
from ringrift_selfplay.adapters.state import SchedulerState
from ringrift_selfplay.api.servicer import SelfplaySchedulerServicer
from ringrift_selfplay.domain.service import Scheduler
from ringrift_selfplay.domain.targets import NodeLoad
from ringrift_settings import RingriftSettings

NAME = "selfplay"


def node_load(node: common_pb2.NodeInfo) -> NodeLoad:
    """The node's hardware as ringrift_contracts.nodes reads it, and its load."""
    gpu = effective_gpu(node)
    metrics = node.metrics
    return NodeLoad(
        node_id=node.node_id,
        gpu_model=gpu.model,
        gpu_count=gpu.count,
        gpu_memory_mb=gpu.memory_mb,
        cpu_cores=cpu_cores(node),
        ram_gb=ram_mb(node) / 1024,
        roles=role_names(node),
        cpu_percent=metrics.cpu_percent,
        memory_percent=metrics.memory_percent,
        disk_percent=metrics.disk_percent,
        gpu_percent=metrics.gpu_utilization_percent,
        gpu_memory_percent=metrics.gpu_memory_percent,
    )


class SelfplayApp:
    name = NAME

    def __init__(self, settings: RingriftSettings) -> None:
        self.members = membership_cache(settings.etcd)
        self.security = Security.of(settings)
        self.access = access  # who may call what (ringrift_contracts.access)
        self.security.require(Kind.SERVICE, NAME)
        self._state_channel = ChannelFactory.of(settings, self.security).service(settings.endpoints, "state")
        self.scheduler = Scheduler(
            settings.pipeline, settings.selfplay, settings.training, SchedulerState(self._state_channel), self._node
        )
        self.registrations = [registration(SERVICE_BY_PROCESS[NAME], SelfplaySchedulerServicer(self.scheduler))]

    def _node(self, node_id: str) -> NodeLoad | None:
        node = self.members.values().get(node_id)
        return node_load(node) if node is not None else None

    async def start(self, bound: Bound) -> None:
        await self.members.start(wait=False)
        await self.members.wait_ready()

    async def stop(self) -> None:
        await self.members.stop()
        await self._state_channel.close()


def build(settings: RingriftSettings) -> SelfplayApp:
    return SelfplayApp(settings)


def main() -> None:
    sys.exit(run_service(NAME, build, RingriftSettings))
