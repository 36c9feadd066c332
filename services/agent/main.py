"""Composition root of the node agent: build(settings) -> app; nothing built at import."""

from __future__ import annotations

import sys

from ringrift_agent.adapters.node_info import NodeInfoSource
from ringrift_agent.adapters.system import SystemProbe
from ringrift_agent.api.servicer import NodeAgentServicer
from ringrift_runtime.cluster.membership import node_registration
from ringrift_runtime.fencing import FileEpochFence
from ringrift_runtime.grpc.contracts import SERVICE_BY_PROCESS
from ringrift_runtime.grpc.server import Bound, registration
from ringrift_runtime.process import run_service
from ringrift_runtime.settings import RingriftSettings, SettingsError

NAME = "agent"


class AgentApp:
    name = NAME
    registers_endpoint = False  # an agent is a member under nodes/, not a control-plane service

    def __init__(self, settings: RingriftSettings) -> None:
        agent = settings.agent
        if not agent.node_id:
            raise SettingsError("agent.node_id is required: set RINGRIFT_AGENT__NODE_ID (e.g. gpu-node-1)")
        self._settings = settings
        data_dir = agent.data_dir.resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        self.fence = FileEpochFence(data_dir / "agent" / "fence.json")
        self.probe = SystemProbe(data_dir, agent.detect_gpus)
        self.node_info: NodeInfoSource | None = None
        self._registration = None
        self.registrations = [registration(SERVICE_BY_PROCESS[NAME], NodeAgentServicer(self.fence, self._info))]

    async def _info(self):
        assert self.node_info is not None, "the agent has not started"
        return await self.node_info()

    async def start(self, bound: Bound) -> None:
        agent = self._settings.agent
        self.node_info = NodeInfoSource(agent, self.probe, bound.address)
        self._registration = node_registration(
            self._settings.etcd, agent.node_id, self.node_info, agent.metrics_interval_seconds
        )
        await self._registration.start()

    async def stop(self) -> None:
        if self._registration is not None:
            await self._registration.stop()  # revoke: the node leaves at once


def build(settings: RingriftSettings) -> AgentApp:
    return AgentApp(settings)


def main() -> None:
    sys.exit(run_service(NAME, build))
