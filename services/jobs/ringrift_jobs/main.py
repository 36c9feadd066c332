"""Composition root of the job service: build(settings) -> app; nothing built at import."""

from __future__ import annotations

import sys

from ringrift_contracts import access
from ringrift_contracts.membership import membership_cache
from ringrift_jobs.adapters.agents import AgentClients
from ringrift_jobs.adapters.members import MembershipView
from ringrift_jobs.adapters.placement import NodeSelectorPlacement
from ringrift_jobs.adapters.state import StateJobStore
from ringrift_jobs.api.servicer import JobServicer
from ringrift_jobs.domain.lifecycle import JobLifecycle
from ringrift_runtime.grpc.client import ChannelFactory, ChannelPool
from ringrift_runtime.grpc.contracts import SERVICE_BY_PROCESS
from ringrift_runtime.grpc.server import Bound, registration
from ringrift_runtime.process import run_service
from ringrift_runtime.security.context import Security
from ringrift_runtime.security.identity import Kind
from ringrift_settings import RingriftSettings

NAME = "jobs"


class JobsApp:
    name = NAME

    def __init__(self, settings: RingriftSettings) -> None:
        self.security = Security.of(settings)
        self.access = access  # who may call what (ringrift_contracts.access)
        self.security.require(Kind.SERVICE, NAME)
        factory = ChannelFactory.of(settings, self.security)
        self._state_channel = factory.service(settings.endpoints, "state")
        self._nodes_channel = factory.service(settings.endpoints, "nodes")
        self.agents = AgentClients(ChannelPool(factory))
        self.members = membership_cache(settings.etcd)
        store = StateJobStore(self._state_channel)
        self.lifecycle = JobLifecycle(
            store, NodeSelectorPlacement(self._nodes_channel), self.agents, MembershipView(self.members), settings.jobs
        )
        self.registrations = [registration(SERVICE_BY_PROCESS[NAME], JobServicer(self.lifecycle, store))]

    async def start(self, bound: Bound) -> None:
        await self.members.start(wait=False)
        await self.members.wait_ready()  # NOT_SERVING until the first listing

    async def stop(self) -> None:
        await self.members.stop()
        await self.agents.close()
        await self._state_channel.close()
        await self._nodes_channel.close()


def build(settings: RingriftSettings) -> JobsApp:
    return JobsApp(settings)


def main() -> None:
    sys.exit(run_service(NAME, build, RingriftSettings))
