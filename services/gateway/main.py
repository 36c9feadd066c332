"""Composition root of the gateway: build(settings) -> app; nothing built at import.

Every replica serves the facade from watched views of etcd and StateService; replicas
that are leader-eligible campaign, and the leader runs the leader-only work."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from prometheus_client import Counter, Gauge

from ringrift.common.v1 import common_pb2
from ringrift_gateway.adapters.facade import Managers
from ringrift_gateway.adapters.jobs_client import JobsClient
from ringrift_gateway.adapters.loop_store import PrometheusLoopMetrics, StatePauseStore
from ringrift_gateway.adapters.pipeline_client import PipelineClient
from ringrift_gateway.adapters.scaling import CommandProvider, LocalProcessProvider
from ringrift_gateway.adapters.state_client import StateClient
from ringrift_gateway.api.dashboard import Dashboard
from ringrift_gateway.api.servicer import OrchestratorServicer
from ringrift_gateway.api.status import ClusterStatus
from ringrift_gateway.domain.leader import LeaderDuties
from ringrift_gateway.domain.loops import Loop, LoopManager
from ringrift_gateway.domain.pipeline import PipelineLoops
from ringrift_gateway.domain.upkeep import AutoScaling, DataSync, IdleDetection, IdleRules, ScalingRules, Validation
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


def build_loops(settings: RingriftSettings, jobs: JobsClient, pipeline: PipelineLoops | None,
                client: PipelineClient | None, members, provider) -> list[Loop]:
    """The leader's loops and the order they start in (BEHAVIOUR.md, Background loops)."""
    g = settings.gateway
    loops = [
        Loop("JobReaper", g.reap_interval_seconds, jobs.reap, description="LOST, stuck and unverified jobs"),
        Loop("JobDispatcher", g.dispatch_interval_seconds, jobs.dispatch, description="pending jobs to nodes"),
    ]
    if pipeline is None or client is None:
        return loops
    rules = IdleRules(idle_seconds=g.idle_seconds, zombie_seconds=g.zombie_seconds, cooldown_seconds=g.idle_cooldown_seconds)
    scaling = ScalingRules(
        min_nodes=g.autoscaling_min_nodes, max_nodes=g.autoscaling_max_nodes, pending_per_node=g.autoscaling_pending_per_node,
        idle_seconds=g.autoscaling_idle_seconds, cooldown_seconds=g.autoscaling_cooldown_seconds)
    return loops + [
        Loop("QueuePopulator", g.queue_interval_seconds, pipeline.populate_queue, after=("JobDispatcher",),
             description="self-play nodes topped up to their targets"),
        Loop("IdleDetection", g.idle_detection_interval_seconds,
             IdleDetection(client, members, pipeline.populate_queue, rules), after=("QueuePopulator",),
             description="idle nodes fed at once, zombie jobs restarted"),
        Loop("GameCounter", g.games_count_interval_seconds, pipeline.count_games,
             description="games of finished self-play jobs counted per config"),
        Loop("TrainingTrigger", g.training_trigger_interval_seconds, pipeline.trigger_training,
             after=("GameCounter",), description="training started for ready configs and operator requests"),
        Loop("DataSync", g.data_sync_interval_seconds, DataSync(client, settings.pipeline.configs),
             description="games to trainers, best models to players"),
        Loop("EloSync", g.elo_sync_interval_seconds, pipeline.fit_ratings, description="ratings refitted from matches"),
        Loop("Validation", g.validation_interval_seconds,
             Validation(client, g.validation_games, g.validation_per_cycle), after=("EloSync",),
             description="baseline gauntlets for promoted models without them"),
        Loop("AutoScaling", g.autoscaling_interval_seconds, AutoScaling(client, members, provider, scaling),
             after=("QueuePopulator",), description=f"nodes added and removed ({g.autoscaling_provider} provider)"),
    ]


def scaling_provider(settings: RingriftSettings):
    g = settings.gateway
    if g.autoscaling_provider == "local":
        return LocalProcessProvider(settings, Path(g.autoscaling_local_dir))
    if g.autoscaling_provider == "command":
        return CommandProvider(g.autoscaling_up_command, g.autoscaling_down_command)
    return None


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
        self._sync_channel = factory.channel(settings.endpoints.sync)
        self.state = StateClient(self._channel, source=f"gateway/{self.replica_id}")
        self.jobs = JobsClient(self._jobs_channel)
        self.members = membership_cache(settings.etcd)
        self.services = control_plane_cache(settings.etcd)
        self.view = ClusterView(self.replica_id, self.state, self.members, self.services)
        self.election: LeaderElection | None = None
        pipeline = client = None
        if settings.gateway.pipeline_loops:
            client = PipelineClient(self._channel, self._jobs_channel, self._selfplay_channel, self._training_channel,
                                    self._sync_channel)
            selfplay = settings.selfplay
            pipeline = PipelineLoops(client, self.state, self.members, settings.pipeline.configs,
                                     selfplay.games_per_job, selfplay.temperature, selfplay.max_top_up_per_node)
        loops = build_loops(settings, self.jobs, pipeline, client, self.members, scaling_provider(settings))
        self.loops = LoopManager(loops, StatePauseStore(self.state))
        managers = Managers(self._channel, self._jobs_channel, self._nodes_channel, self._selfplay_channel, self._sync_channel)
        self.status = ClusterStatus(self.view, managers, self.state, self.loops, settings.gateway.status_cache_seconds)
        servicer = OrchestratorServicer(self.view, managers, self.status, self.loops, settings.pipeline.configs)
        self.registrations = [registration(SERVICE_BY_PROCESS[NAME], servicer)]
        self.dashboard = Dashboard(self.status, managers)
        self.http_routes = self.dashboard.routes() if settings.gateway.dashboard else {}

    async def start(self, bound: Bound) -> None:
        await self.members.start(wait=False)
        await self.services.start(wait=False)
        self.loops.metrics = PrometheusLoopMetrics(bound.registry)
        Gauge("ringrift_gateway_status_computations", "Cluster status computations since start (shared by "
              "concurrent requests).", registry=bound.registry).set_function(lambda: self.status.computations)
        self.dashboard.bind(asyncio.get_running_loop())
        if not self._settings.gateway.leader_eligible:
            return
        acts = Counter(
            "ringrift_leader_acts_total", "Fenced acts attempted as leader, by outcome.", ["outcome"],
            registry=bound.registry,
        )
        duties = LeaderDuties(self.state, self.members, self.replica_id, self._settings.gateway, acts, self.loops)
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
