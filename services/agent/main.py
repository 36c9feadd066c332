"""Composition root of the node agent: build(settings) -> app; nothing built at import."""

from __future__ import annotations

import asyncio
import logging
import sys

from ringrift_agent.adapters.catalog import load_catalog
from ringrift_agent.adapters.file_stream import FileStreamServer
from ringrift_agent.adapters.files import DataDir
from ringrift_agent.adapters.jobs_client import JobEventSender
from ringrift_agent.adapters.metrics import PullMetrics
from ringrift_agent.adapters.node_info import NodeInfoSource
from ringrift_agent.adapters.outbox import Outbox
from ringrift_agent.adapters.runner import JobRunner
from ringrift_agent.adapters.system import SystemProbe
from ringrift_agent.api.servicer import NodeAgentServicer
from ringrift_agent.domain.templates import TemplateError
from ringrift_runtime.aio import cancel_and_wait
from ringrift_runtime.cluster.membership import node_registration
from ringrift_runtime.fencing import FileEpochFence
from ringrift_runtime.grpc.client import ChannelFactory
from ringrift_runtime.grpc.contracts import SERVICE_BY_PROCESS
from ringrift_runtime.grpc.server import Bound, registration
from ringrift_runtime.process import run_service
from ringrift_runtime.settings import RingriftSettings, SettingsError, environment_subset

NAME = "agent"
log = logging.getLogger("ringrift.agent")


class AgentApp:
    name = NAME
    registers_endpoint = False  # an agent is a member under nodes/, not a control-plane service

    def __init__(self, settings: RingriftSettings) -> None:
        agent = settings.agent
        if not agent.node_id:
            raise SettingsError("agent.node_id is required: set RINGRIFT_AGENT__NODE_ID (e.g. gpu-node-1)")
        try:
            self.catalog = load_catalog(agent.templates_file)
        except TemplateError as exc:
            raise SettingsError(f"agent.templates_file: {exc}") from None
        self._settings = settings
        data_dir = agent.data_dir.resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        self.fence = FileEpochFence(data_dir / "agent" / "fence.json")
        self.probe = SystemProbe(data_dir, agent.detect_gpus)
        channels = ChannelFactory(settings.client)
        self._channel = channels.channel(settings.endpoints.jobs)
        self.outbox = Outbox(data_dir / "agent" / "outbox", JobEventSender(self._channel))
        self.runner = JobRunner(
            data_dir, agent.node_id, self.outbox, agent.kill_grace_seconds, environment_subset(agent.job_env_passthrough)
        )
        self.node_info: NodeInfoSource | None = None
        self._registration = None
        self._delivery: asyncio.Task | None = None
        data = DataDir(data_dir)
        self.streams = (
            FileStreamServer(data, settings.server.host, agent.file_stream_port) if agent.file_stream_port >= 0 else None
        )
        self.servicer = servicer = NodeAgentServicer(
            self.fence, self._info, self.runner, self.catalog, settings.jobs, self._gpu_count, data, channels, self.streams
        )
        self.registrations = [registration(SERVICE_BY_PROCESS[NAME], servicer)]

    def _gpu_count(self) -> int:
        return self.node_info.gpu_count() if self.node_info else 0

    async def _info(self):
        assert self.node_info is not None, "the agent has not started"
        return await self.node_info()

    async def start(self, bound: Bound) -> None:
        agent = self._settings.agent
        self.servicer.pull_metrics = PullMetrics(bound.registry)
        if self.streams is not None:
            await self.streams.start()
            log.info("file streams on port %d", self.streams.port)
        recovered = await self.runner.recover()
        if any(recovered.values()):
            log.info("jobs after restart: %s", recovered)
        self._delivery = asyncio.create_task(self.outbox.run(), name="job-events")
        self.node_info = NodeInfoSource(agent, self.probe, bound.address, sorted(self.catalog), self.runner.running_by_kind)
        await self.node_info.detect()
        self._registration = node_registration(
            self._settings.etcd, agent.node_id, self.node_info, agent.metrics_interval_seconds
        )
        await self._registration.start()

    async def stop(self) -> None:
        if self._registration is not None:
            await self._registration.stop()  # revoke: the node leaves at once
        # Jobs keep running and a restarted agent re-adopts them, unless told otherwise.
        await self.runner.stop(kill_jobs=self._settings.agent.stop_jobs_on_shutdown)
        await cancel_and_wait(self._delivery)
        if self.streams is not None:
            await self.streams.stop()
        await self._channel.close()


def build(settings: RingriftSettings) -> AgentApp:
    return AgentApp(settings)


def main() -> None:
    sys.exit(run_service(NAME, build))
