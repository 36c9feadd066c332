"""Composition root of the sync planner: build(settings) -> app; nothing built at import."""

from __future__ import annotations

import sys

from ringrift_contracts import access
from ringrift_contracts.membership import membership_cache
from ringrift_contracts.tables import role_names
from ringrift_runtime.grpc.client import ChannelFactory, ChannelPool
from ringrift_runtime.grpc.contracts import SERVICE_BY_PROCESS
from ringrift_runtime.grpc.server import Bound, registration
from ringrift_runtime.process import run_service
from ringrift_runtime.security.context import Security
from ringrift_runtime.security.identity import Kind
from ringrift_settings import RingriftSettings
from ringrift_sync.adapters.clients import AgentFiles, StateClient, Trainers
from ringrift_sync.api.servicer import SyncPlannerServicer
from ringrift_sync.domain.service import Member, SyncPlanner

NAME = "sync"


class SyncApp:
    name = NAME

    def __init__(self, settings: RingriftSettings) -> None:
        self.members = membership_cache(settings.etcd)
        self.security = Security.of(settings)
        self.access = access  # who may call what (ringrift_contracts.access)
        self.security.require(Kind.SERVICE, NAME)
        factory = ChannelFactory.of(settings, self.security)
        self._agents = ChannelPool(factory)
        self._state_channel = factory.service(settings.endpoints, "state")
        self._nodes_channel = factory.service(settings.endpoints, "nodes")
        files = AgentFiles(self._agents, self._address)
        self.planner = SyncPlanner(
            settings.sync, files, StateClient(self._state_channel), Trainers(self._nodes_channel), self._members
        )
        self.registrations = [registration(SERVICE_BY_PROCESS[NAME], SyncPlannerServicer(self.planner))]

    def _address(self, node_id: str) -> str | None:
        node = self.members.values().get(node_id)
        return node.address if node is not None else None

    def _members(self) -> dict[str, Member]:
        return {
            node_id: Member(node_id, role_names(node), frozenset(node.job_kinds))
            for node_id, node in self.members.values().items()
        }

    async def start(self, bound: Bound) -> None:
        await self.members.start(wait=False)
        await self.members.wait_ready()  # NOT_SERVING until the first listing

    async def stop(self) -> None:
        await self.members.stop()
        await self._agents.close()
        await self._state_channel.close()
        await self._nodes_channel.close()


def build(settings: RingriftSettings) -> SyncApp:
    return SyncApp(settings)


def main() -> None:
    sys.exit(run_service(NAME, build, RingriftSettings))
