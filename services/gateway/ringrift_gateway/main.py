"""Composition root of the gateway: build(settings) -> app; nothing built at import.

Every replica serves the facade from watched views of etcd and StateService; replicas
that are leader-eligible campaign, and the leader runs the leader-only work."""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import Counter, Gauge

from ringrift.common.v1 import common_pb2
from ringrift.nodes.v1 import nodes_pb2
from ringrift_contracts import access
from ringrift_contracts.membership import membership_cache, quarantine_message
from ringrift_contracts.skipped import reported_to_state
from ringrift_gateway.adapters.authority import CertificateAuthority
from ringrift_gateway.adapters.clients.jobs import JobsClient
from ringrift_gateway.adapters.clients.nodes import NodesClient
from ringrift_gateway.adapters.clients.selfplay import SelfplayClient
from ringrift_gateway.adapters.clients.state import StateClient
from ringrift_gateway.adapters.clients.sync import SyncClient
from ringrift_gateway.adapters.clients.training import TrainingClient
from ringrift_gateway.adapters.loop_store import PrometheusLoopMetrics, StatePauseStore
from ringrift_gateway.adapters.scaling import CommandProvider, LocalProcessProvider
from ringrift_gateway.api.audit import AuditTrail
from ringrift_gateway.api.dashboard import Dashboard
from ringrift_gateway.api.dashboard_access import DashboardAccess
from ringrift_gateway.api.prometheus import SD_PATH, ClusterCollector, sd_route
from ringrift_gateway.api.servicer import Clients, OrchestratorServicer
from ringrift_gateway.api.status import ClusterStatus
from ringrift_gateway.domain.leader import LeaderDuties
from ringrift_gateway.domain.loops import Loop, LoopManager
from ringrift_gateway.domain.loops.data_sync import DataSync
from ringrift_gateway.domain.loops.games import GameCounter
from ringrift_gateway.domain.loops.idle import IdleDetection, IdleRules
from ringrift_gateway.domain.loops.jobs import DispatchWakes, JobCleanup, JobDispatcher, JobReaper
from ringrift_gateway.domain.loops.queue import QueuePopulator
from ringrift_gateway.domain.loops.ratings import EloSync
from ringrift_gateway.domain.loops.scaling import AutoScaling, ScalingRules
from ringrift_gateway.domain.loops.training import TrainingTrigger
from ringrift_gateway.domain.loops.validation import Validation
from ringrift_gateway.domain.ports import Membership
from ringrift_runtime.cluster.election import LeaderElection, Leadership
from ringrift_runtime.cluster.etcd import Keyspace
from ringrift_runtime.cluster.registry import control_plane_cache
from ringrift_runtime.errors import RingriftError
from ringrift_runtime.grpc.client import ChannelFactory
from ringrift_runtime.grpc.contracts import SERVICE_BY_PROCESS
from ringrift_runtime.grpc.server import Bound, instance_name, registration
from ringrift_runtime.process import run_service
from ringrift_runtime.security.context import Security
from ringrift_runtime.security.identity import Kind
from ringrift_runtime.security.tokens import TokenStore
from ringrift_runtime.settings import SettingsError
from ringrift_runtime.skipped import SkippedRecords
from ringrift_settings import RingriftSettings

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

    def quarantines(self) -> list[nodes_pb2.NodeQuarantine]:
        return [quarantine_message(node_id, q) for node_id, q in sorted(self._members.quarantined().items())]

    def services(self) -> list[common_pb2.ServiceEndpoint]:
        return [self._services.values()[name] for name in sorted(self._services.values())]


@dataclass(frozen=True)
class Downstream:
    """One client per service the gateway calls."""

    state: StateClient
    jobs: JobsClient
    nodes: NodesClient
    selfplay: SelfplayClient
    training: TrainingClient
    sync: SyncClient


def build_loops(
    settings: RingriftSettings,
    clients: Downstream,
    members: Membership,
    provider,
    skipped: SkippedRecords | None = None,
    wakes: DispatchWakes | None = None,
) -> list[Loop]:
    """The leader's loops and the order they start in (BEHAVIOUR.md, Background loops).
    ``skipped`` counts and reports the malformed records they pass over."""
    g = settings.gateway
    loops = [
        Loop(
            "JobReaper", g.reap_interval_seconds, JobReaper(clients.jobs), description="LOST, stuck and unverified jobs"
        ),
        Loop(
            "JobDispatcher",
            g.dispatch_interval_seconds,
            JobDispatcher(clients.jobs, wakes),
            description="pending jobs to nodes",
        ),
        Loop(
            "JobCleanup",
            g.cleanup_interval_seconds,
            JobCleanup(clients.jobs),
            description="terminal jobs to history after a day, history deleted after 30 days",
        ),
    ]
    if not g.pipeline_loops:
        return loops
    s = settings.selfplay
    queue = QueuePopulator(
        clients.selfplay, clients.jobs, clients.state, members, s.games_per_job, s.temperature_for,
        s.max_top_up_per_node,
    )  # fmt: skip
    configs = settings.pipeline.configs
    return [
        *loops,
        Loop("QueuePopulator", g.queue_interval_seconds, queue, after=("JobDispatcher",),
             description="self-play nodes topped up to their targets"),
        Loop("IdleDetection", g.idle_detection_interval_seconds,
             IdleDetection(clients.jobs, members, queue, IdleRules.of(g)), after=("QueuePopulator",),
             description="idle nodes fed at once, zombie jobs restarted"),
        Loop("GameCounter", g.games_count_interval_seconds, GameCounter(clients.state, clients.jobs, skipped),
             description="games of finished self-play jobs counted per config"),
        Loop("TrainingTrigger", g.training_trigger_interval_seconds,
             TrainingTrigger(clients.state, clients.training, configs), after=("GameCounter",),
             description="training started for ready configs and operator requests"),
        Loop("DataSync", g.data_sync_interval_seconds, DataSync(clients.sync, clients.state, configs),
             description="games to trainers, best models to players"),
        Loop("EloSync", g.elo_sync_interval_seconds, EloSync(clients.training),
             description="ratings refitted from matches"),
        Loop("Validation", g.validation_interval_seconds,
             Validation(clients.state, clients.jobs, settings.training.baselines, g.validation_games,
                        g.validation_per_cycle),
             after=("EloSync",), description="baseline gauntlets for promoted models without them"),
        Loop("AutoScaling", g.autoscaling_interval_seconds,
             AutoScaling(clients.state, clients.jobs, members, provider, ScalingRules.of(g)), after=("QueuePopulator",),
             description=f"nodes added and removed ({g.autoscaling_provider} provider)"),
    ]  # fmt: skip


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
        self.security = Security.of(settings)
        # The replica's name: its certificate's identity (the election and StateService check it).
        self.replica_id = self.security.identity.name if self.security.identity else instance_name(settings, NAME)
        if settings.instance_id and settings.instance_id != self.replica_id:
            raise SettingsError(
                f"instance_id {settings.instance_id!r} is not this gateway's certificate ({self.replica_id})"
            )
        self.access = access  # who may call what (ringrift_contracts.access)
        self.security.require(Kind.GATEWAY)
        self.token_port = settings.security.token_port
        factory = ChannelFactory.of(settings, self.security)
        self._channels = [
            factory.service(settings.endpoints, name)
            for name in ("state", "jobs", "nodes", "selfplay", "training", "sync")
        ]
        state, jobs, nodes, selfplay, training, sync = self._channels
        self.clients = Downstream(
            StateClient(state, source=f"gateway/{self.replica_id}"),
            JobsClient(jobs),
            NodesClient(nodes),
            SelfplayClient(selfplay),
            TrainingClient(training),
            SyncClient(sync),
        )
        self.state = self.clients.state
        self.members = membership_cache(settings.etcd)
        self.services = control_plane_cache(settings.etcd)
        self.view = ClusterView(self.replica_id, self.state, self.members, self.services)
        self.election: LeaderElection | None = None
        self.skipped = reported_to_state(state, "gateway")
        # When dispatch runs: told by the facade's submissions, the leader's event stream
        # and each dispatch round.
        self.wakes = DispatchWakes()
        loops = build_loops(settings, self.clients, self.members, scaling_provider(settings), self.skipped, self.wakes)
        self.loops = LoopManager(loops, StatePauseStore(self.state))
        self.wakes.bind(self.loops)
        self.status = ClusterStatus(
            self.view, self.state, self.loops, settings.gateway.status_cache_seconds, self.security.insecure
        )
        facade = Clients(
            self.state,
            self.clients.jobs,
            self.clients.nodes,
            self.clients.selfplay,
            self.clients.sync,
            self.clients.training,
        )
        security = settings.security
        self.authority = (
            None
            if self.security.insecure
            else CertificateAuthority(
                self.security.cluster,
                security.ca_file,
                security.ca_key_file,
                TokenStore(security.tokens_file) if security.tokens_file else None,
                self.state,
                security.issued_cert_seconds,
            )
        )
        servicer = OrchestratorServicer(
            self.view, facade, self.status, self.loops, settings.pipeline.configs, self.authority, self.wakes
        )
        self.registrations = [registration(SERVICE_BY_PROCESS[NAME], servicer)]
        self.audit = AuditTrail(self.state.publish)  # users' mutating calls, as AUDIT events
        self.dashboard = Dashboard(self.status, self.state, settings.training.baselines)
        tokens = settings.security.tokens_file
        access_to_dashboard = DashboardAccess(
            self.security.cluster,
            TokenStore(tokens) if tokens else None,
            [
                *settings.gateway.dashboard_hosts,
                *([settings.server.advertise_host] if settings.server.advertise_host else []),
            ],
            self.security.insecure,
        )
        self.http_routes = access_to_dashboard.routes(self.dashboard.routes()) if settings.gateway.dashboard else {}
        self.http_routes[SD_PATH] = sd_route(settings.etcd.cluster_name, self.services.values, self.members.values)

    async def start(self, bound: Bound) -> None:
        await self.members.start(wait=False)
        await self.services.start(wait=False)
        self.loops.metrics = PrometheusLoopMetrics(bound.registry)
        bound.registry.register(self.skipped.collector())
        Gauge(
            "ringrift_gateway_status_computations",
            "Cluster status computations since start (shared by concurrent requests).",
            registry=bound.registry,
        ).set_function(lambda: self.status.computations)
        bound.registry.register(
            ClusterCollector(
                self.members.values,
                lambda: self.election is not None and self.election.is_leader,
                lambda: self.election.terms if self.election is not None else 0,
            )
        )
        self.dashboard.bind(asyncio.get_running_loop())
        if self.authority is not None:
            self.authority.address = bound.address
        if not self._settings.gateway.leader_eligible:
            return
        acts = Counter(
            "ringrift_leader_acts_total",
            "Fenced acts attempted as leader, by outcome.",
            ["outcome"],
            registry=bound.registry,
        )
        duties = LeaderDuties(
            self.state, self.members, self.replica_id, self._settings.gateway, acts, self.loops, self.wakes
        )
        value = json.dumps({"candidate": self.replica_id, "address": bound.address}).encode()
        self.election = LeaderElection(
            self._settings.etcd, Keyspace(self._settings.etcd.cluster_name), self.replica_id, value
        )
        self.election.on_lost(self._announce_lost)
        await self.election.start(duties.lead)

    async def _announce_lost(self, leadership: Leadership, reason: str) -> None:
        """Best effort and unfenced (epoch 0): a deposed leader's fenced write would be refused."""
        try:
            await self.state.publish(
                "LEADER_LOST",
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
        for channel in self._channels:
            await channel.close()


def build(settings: RingriftSettings) -> GatewayApp:
    return GatewayApp(settings)


def main() -> None:
    sys.exit(run_service(NAME, build, RingriftSettings))
