"""Composition root of the job service: build(settings) -> app; nothing built at import."""

from __future__ import annotations

import sys

from ringrift_jobs.adapters.clients import Agents, JobStore, Placement
from ringrift_jobs.api.lifecycle import JobLifecycle
from ringrift_jobs.api.servicer import JobServicer
from ringrift_runtime.cluster.membership import membership_cache
from ringrift_runtime.grpc.client import ChannelFactory
from ringrift_runtime.grpc.contracts import SERVICE_BY_PROCESS
from ringrift_runtime.grpc.server import Bound, registration
from ringrift_runtime.process import run_service
from ringrift_runtime.settings import RingriftSettings

NAME = "jobs"


class JobsApp:
    name = NAME

    def __init__(self, settings: RingriftSettings) -> None:
        factory = ChannelFactory(settings.client)
        self._state_channel = factory.channel(settings.endpoints.state)
        self._nodes_channel = factory.channel(settings.endpoints.nodes)
        self.agents = Agents(factory)
        self.members = membership_cache(settings.etcd)
        self.lifecycle = JobLifecycle(
            JobStore(self._state_channel), Placement(self._nodes_channel), self.agents, self.members, settings.jobs
        )
        self.registrations = [registration(SERVICE_BY_PROCESS[NAME], JobServicer(self.lifecycle))]

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
    sys.exit(run_service(NAME, build))
