"""This node's NodeInfo: identity and declared capabilities from settings, detected
capabilities from the machine, live metrics refreshed on every call."""

from __future__ import annotations

import socket
from collections.abc import Callable

from ringrift.common.v1 import common_pb2
from ringrift_agent.adapters.system import SystemProbe
from ringrift_runtime import __version__
from ringrift_runtime.grpc.times import now, to_timestamp
from ringrift_settings import AgentSettings

ROLE_BY_NAME = {
    "selfplay": common_pb2.NODE_ROLE_SELFPLAY,
    "training": common_pb2.NODE_ROLE_TRAINING,
    "gauntlet": common_pb2.NODE_ROLE_GAUNTLET,
    "export": common_pb2.NODE_ROLE_EXPORT,
}


class NodeInfoSource:
    def __init__(
        self,
        settings: AgentSettings,
        probe: SystemProbe,
        address: str,
        job_kinds: list[str],
        running_jobs_by_kind: Callable[[], dict[str, int]],
        metrics_address: str = "",
    ) -> None:
        self._settings = settings
        self._probe = probe
        self._address = address
        self._job_kinds = job_kinds
        self._running = running_jobs_by_kind
        self._metrics_address = metrics_address
        self._started_at = to_timestamp(now())
        self._detected_gpus: list = []

    async def detect(self) -> None:
        """Probe GPUs once at start (nvidia-smi); later refreshes update their load."""
        self._detected_gpus = await self._probe.gpus()

    def gpu_count(self) -> int:
        return len(self._detected_gpus) or self._settings.gpu.count

    def declared(self) -> common_pb2.NodeCapabilities:
        settings = self._settings
        gpu = None
        if settings.gpu.count:
            gpu = common_pb2.GpuInfo(
                model=settings.gpu.model, count=settings.gpu.count, memory_mb=settings.gpu.memory_mb
            )
        return common_pb2.NodeCapabilities(
            gpu=gpu,
            cpu_cores=settings.cpu_cores,
            ram_mb=settings.ram_mb,
            roles=[ROLE_BY_NAME[r] for r in settings.roles],
            labels=settings.labels,
        )

    def detected(self, gpus) -> common_pb2.NodeCapabilities:
        gpu = None
        if gpus:
            gpu = common_pb2.GpuInfo(model=gpus[0].model, count=len(gpus), memory_mb=gpus[0].memory_mb)
        return common_pb2.NodeCapabilities(
            gpu=gpu, cpu_cores=self._probe.cpu_cores(), ram_mb=self._probe.ram_mb(), disk_mb=self._probe.disk_mb()
        )

    async def __call__(self) -> common_pb2.NodeInfo:
        gpus = await self._probe.gpus() if self._detected_gpus else []
        usage = await self._probe.usage(gpus)
        return common_pb2.NodeInfo(
            node_id=self._settings.node_id,
            address=self._address,
            hostname=socket.gethostname(),
            declared=self.declared(),
            detected=self.detected(gpus),
            metrics=common_pb2.NodeMetrics(
                cpu_percent=usage.cpu_percent,
                memory_percent=usage.memory_percent,
                disk_percent=usage.disk_percent,
                gpu_utilization_percent=usage.gpu_utilization_percent,
                gpu_memory_percent=usage.gpu_memory_percent,
                running_jobs_by_kind=self._running(),
                free_ram_mb=usage.free_ram_mb,
                measured_at=to_timestamp(now()),
            ),
            agent_version=__version__,
            started_at=self._started_at,
            job_kinds=self._job_kinds,
            job_slots=self._settings.job_slots or self._probe.cpu_cores(),
            metrics_address=self._metrics_address,
        )
