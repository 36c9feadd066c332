"""Composition root of the gateway: build(settings) -> app; nothing built at import.

Every replica serves the facade from watched views of etcd and StateService; replicas
that are leader-eligible campaign, and the leader runs the leader-only work."""

from __future__ import annotations

import sys

from prometheus_client import Counter

from ringrift.common.v1 import common_pb2
from ringrift_gateway.adapters.facade import Managers
from ringrift_gateway.adapters.jobs_client import JobsClient
from ringrift_gateway.adapters.pipeline_client import PipelineClient
from ringrift_gateway.adapters.state_client import StateClient
from ringrift_gateway.api.servicer import OrchestratorServicer
from ringrift_gateway.domain.leader import LeaderDuties
from ringrift_gateway.domain.pipeline import PipelineLoops
from ringrift_runtime.cluster.election import LeaderElection, Leadership
from ringrift_runtime.cluster.etcd import Keyspace
from ringrift_runtime.cluster.membership import membership_cache
from ringrift_runtime.cluster.registry import control_plane_cache
from ringrift_runtime.errors import RingriftError
from ringrift_runtime.grpc.client import ChannelFactory
from ringrift_runtime.grpc.contracts import SERVICE_BY_PROCESS
from ringrift_runtime.grpc.server import Bound, instance_name, registration
from ringrift_runtime.process import run_service
from ringrift_runtime.settings import RingriftSettings

NAME = "gateway"


class ClusterView:
    """What any replica can answer from its watched caches and StateService."""

    def __init__(self, replica_id: str, state: StateClient, members, services) -> None:
        self.replica_id = replica_id
        self._state = state
        self._members = members
        self._services = services

    async def epoch(self):
        return await self._state.get_epoch()

    def nodes(self, include_unschedulable: bool) -> list[common_pb2.NodeInfo]:
        nodes = sorted(self._members.values().values(), key=lambda n: n.node_id)
        if include_unschedulable:
            return nodes
        return [n for n in nodes if not (n.draining or n.quarantined)]

    def services(self) -> list[common_pb2.ServiceEndpoint]:
        return [self._services.values()[name] for name in sorted(self._services.values())]


class GatewayApp:
    name = NAME

    def __init__(self, settings: RingriftSettings) -> None:
        self._settings = settings
        self.replica_id = instance_name(settings, NAME)
        factory = ChannelFactory(settings.client)
        self._channel = factory.channel(settings.endpoints.state)
        self._jobs_channel = factory.channel(settings.endpoints.jobs)
        self._nodes_channel = factory.channel(settings.endpoints.nodes)
        self._selfplay_channel = factory.channel(settings.endpoints.selfplay)
        self._training_channel = factory.channel(settings.endpoints.training)
        self.state = StateClient(self._channel, source=f"gateway/{self.replica_id}")
        self.jobs = JobsClient(self._jobs_channel)
        self.members = membership_cache(settings.etcd)
        self.services = control_plane_cache(settings.etcd)
        self.view = ClusterView(self.replica_id, self.state, self.members, self.services)
        self.election: LeaderElection | None = None
        self._sync_channel = factory.channel(settings.endpoints.sync)
        managers = Managers(self._channel, self._jobs_channel, self._nodes_channel, self._selfplay_channel, self._sync_channel)
        servicer = OrchestratorServicer(self.view, managers, settings.pipeline.configs)
        self.registrations = [registration(SERVICE_BY_PROCESS[NAME], servicer)]

    async def start(self, bound: Bound) -> None:
        await self.members.start(wait=False)
        await self.services.start(wait=False)
        if not self._settings.gateway.leader_eligible:
            return
        acts = Counter(
            "ringrift_leader_acts_total", "Fenced acts attempted as leader, by outcome.", ["outcome"],
            registry=bound.registry,
        )
        pipeline = None
        if self._settings.gateway.pipeline_loops:
            client = PipelineClient(self._channel, self._jobs_channel, self._selfplay_channel, self._training_channel)
            selfplay = self._settings.selfplay
            pipeline = PipelineLoops(client, self.state, self.members, self._settings.pipeline.configs,
                                     selfplay.games_per_job, selfplay.temperature, selfplay.max_top_up_per_node)
        duties = LeaderDuties(
            self.state, self.jobs, self.members, self.replica_id, self._settings.gateway, acts, pipeline
        )
        self.election = LeaderElection(
            self._settings.etcd, Keyspace(self._settings.etcd.cluster_name), self.replica_id, bound.address.encode()
        )
        self.election.on_lost(self._announce_lost)
        await self.election.start(duties.lead)

    async def _announce_lost(self, leadership: Leadership, reason: str) -> None:
        """Best effort and unfenced (epoch 0): a deposed leader's fenced write would be refused."""
        try:
            await self.state.publish(
                common_pb2.EVENT_TYPE_LEADER_LOST,
                self.replica_id,
                0,
                f"leader-lost/{leadership.epoch}",
                {"epoch": str(leadership.epoch), "reason": reason[:500]},
            )
        except RingriftError:
            pass

    async def before_drain(self) -> None:
        if self.election is not None:
            await self.election.resign()  # hand over at once

    async def stop(self) -> None:
        await self.members.stop()
        await self.services.stop()
        await self._channel.close()
        await self._jobs_channel.close()
        await self._nodes_channel.close()
        await self._selfplay_channel.close()
        await self._training_channel.close()
        await self._sync_channel.close()


def build(settings: RingriftSettings) -> GatewayApp:
    return GatewayApp(settings)


def main() -> None:
    sys.exit(run_service(NAME, build))
