"""Composition root of the node agent: build(settings) -> app; nothing built at import."""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

from ringrift.state.v1 import state_pb2, state_pb2_grpc
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
from ringrift_contracts import access
from ringrift_contracts.membership import member_address, node_registration
from ringrift_contracts.skipped import reported_to_state
from ringrift_runtime.aio import cancel_and_wait
from ringrift_runtime.cluster.leased import LeasedKey
from ringrift_runtime.fencing import FileEpochFence
from ringrift_runtime.grpc.calls import call
from ringrift_runtime.grpc.client import ChannelFactory
from ringrift_runtime.grpc.contracts import SERVICE_BY_PROCESS
from ringrift_runtime.grpc.server import Bound, registration
from ringrift_runtime.process import run_service
from ringrift_runtime.security.context import Security
from ringrift_runtime.security.identity import Kind
from ringrift_runtime.security.join import JoinError, join, keep_renewed, renewal_gateway
from ringrift_runtime.security.tls import CertFiles
from ringrift_runtime.settings import SettingsError, environment_subset
from ringrift_settings import RingriftSettings

NAME = "agent"
SELF_FENCE_CHECK_SECONDS = 0.2
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
        self._state_channel: Any = None  # set below, once the factory exists
        self.fence = FileEpochFence(data_dir / "agent" / "fence.json", self._epoch_issued)
        self.probe = SystemProbe(data_dir, agent.detect_gpus)
        self.security = Security.of(settings)
        self.access = access  # who may call what (ringrift_contracts.access)
        self.security.require(Kind.AGENT, agent.node_id)
        channels = ChannelFactory.of(settings, self.security)
        self._channel = channels.service(settings.endpoints, "jobs")
        self._state_channel = channels.service(settings.endpoints, "state")
        sender = JobEventSender(self._channel)
        self.outbox = Outbox(
            data_dir / "agent" / "outbox",
            sender,
            skipped=reported_to_state(self._state_channel, f"agent/{agent.node_id}"),
        )
        self.runner = JobRunner(
            data_dir,
            agent.node_id,
            self.outbox,
            agent.kill_grace_seconds,
            environment_subset(agent.job_env_passthrough),
            agent.job_log_max_bytes,
            agent.running_report_delay_seconds,
            agent.standby_wrapper,
            agent.ended_attempts_in_memory,
            agent.work_dir_max_ended,
            agent.job_wrapper,
        )
        sender.on_superseded = self.runner.supersede
        self.runner.job_slots = agent.job_slots or self.probe.cpu_cores()  # as advertised in NodeInfo
        self.node_info: NodeInfoSource | None = None
        self._registration: LeasedKey | None = None
        self._delivery: asyncio.Task | None = None
        self._pruning: asyncio.Task | None = None
        self._fencing: asyncio.Task | None = None
        self._log_caps: asyncio.Task | None = None
        self._renewal: asyncio.Task | None = None
        data = DataDir(data_dir)
        serve_tls, pull_tls = self.security.stream_contexts(settings.security.plaintext_file_stream)
        self.streams = (
            FileStreamServer(data, settings.server.host, agent.file_stream_port, tls=serve_tls)
            if agent.file_stream_port >= 0
            else None
        )
        self.servicer = servicer = NodeAgentServicer(
            self.fence,
            self._info,
            self.runner,
            self.catalog,
            settings.jobs,
            self._gpu_count,
            data,
            channels,
            self.streams,
            pull_tls,
            lambda node_id: member_address(settings.etcd, node_id),
        )
        self.registrations = [registration(SERVICE_BY_PROCESS[NAME], servicer)]

    async def _epoch_issued(self, epoch: int) -> bool:
        """StateService issued ``epoch`` (it is not above the highest it ever issued)."""
        assert self._state_channel is not None
        stub = state_pb2_grpc.StateServiceStub(self._state_channel)
        reply = await call(stub.GetClusterEpoch(state_pb2.GetClusterEpochRequest()))
        return epoch <= reply.epoch

    def _gpu_count(self) -> int:
        return self.node_info.gpu_count() if self.node_info else 0

    async def _info(self):
        assert self.node_info is not None, "the agent has not started"
        return await self.node_info()

    async def start(self, bound: Bound) -> None:
        agent = self._settings.agent
        self.servicer.pull_metrics = PullMetrics(bound.registry)
        bound.registry.register(self.outbox.skipped.collector())
        if self.streams is not None:
            await self.streams.start()
            log.info("file streams on port %d", self.streams.port)
        recovered = await self.runner.recover()
        self.runner.prepare()
        if any(recovered.values()):
            log.info("jobs after restart: %s", recovered)
        self._delivery = asyncio.create_task(self.outbox.run(), name="job-events")
        self._pruning = asyncio.create_task(
            self.runner.prune_forever(agent.work_dir_retention_hours * 3600, agent.work_dir_prune_seconds),
            name="work-dir-retention",
        )
        self._log_caps = asyncio.create_task(
            self.runner.cap_logs_forever(agent.job_log_check_seconds), name="job-log-caps"
        )
        files = _own_files(self._settings)
        if files is not None and (self._settings.security.join_gateway or renewal_gateway(files, "")):
            security = self._settings.security
            self._renewal = asyncio.create_task(
                keep_renewed(
                    security.join_gateway, self._settings.etcd.cluster_name, files, security.renew_check_seconds
                ),
                name="certificate-renewal",
            )
        self.node_info = NodeInfoSource(
            agent,
            self.probe,
            bound.address,
            sorted(self.catalog),
            self.runner.running_by_kind,
            f"{bound.host}:{bound.metrics_port}" if bound.metrics_port else "",
        )
        await self.node_info.detect()
        self._registration = node_registration(
            self._settings.etcd, agent.node_id, self.node_info, agent.metrics_interval_seconds
        )
        await self._registration.start()
        self._fencing = asyncio.create_task(self._self_fence(self._registration), name="self-fence")

    async def _self_fence(self, registration: LeasedKey) -> None:
        """Kill the running jobs as soon as this node's lease is no longer surely alive
        (cut off from etcd, or paused past its TTL): the leader retries them elsewhere once
        etcd expires the lease, which is at least the margin later. Start jobs again once
        registered under a new lease."""
        ttl = self._settings.etcd.lease_ttl_seconds
        margin = min(self._settings.agent.self_fence_margin_seconds, ttl / 4)
        while True:
            await asyncio.sleep(SELF_FENCE_CHECK_SECONDS)
            if not registration.registrations:
                continue  # never registered: nothing was placed here yet
            valid = registration.registered.is_set() and registration.lease_remaining() > margin
            if not valid and not self.runner.fenced_reason:
                self.runner.fence(
                    f"{self._settings.agent.node_id} lost its etcd lease (under {margin:.1f}s left of {ttl}s): "
                    "its jobs were stopped so that none runs on two nodes"
                )
            elif valid and self.runner.fenced_reason:
                self.runner.unfence()
                log.info("registered again under a new lease: accepting jobs")

    async def stop(self) -> None:
        await cancel_and_wait(self._fencing)  # a graceful stop keeps the jobs for the next start
        if self._registration is not None:
            await self._registration.stop()  # revoke: the node leaves at once
        # Jobs keep running and a restarted agent re-adopts them, unless told otherwise.
        await self.runner.stop(kill_jobs=self._settings.agent.stop_jobs_on_shutdown)
        await cancel_and_wait(self._delivery)
        await cancel_and_wait(self._pruning)
        await cancel_and_wait(self._log_caps)
        await cancel_and_wait(self._renewal)
        if self.streams is not None:
            await self.streams.stop()
        await self._channel.close()
        if self._state_channel is not None:
            await self._state_channel.close()


def build(settings: RingriftSettings) -> AgentApp:
    return AgentApp(settings)


def _own_files(settings: RingriftSettings) -> CertFiles | None:
    s = settings.security
    if s.insecure or not (s.ca_file and s.cert_file and s.key_file):
        return None
    return CertFiles(s.ca_file, s.cert_file, s.key_file)


async def join_if_needed(settings: RingriftSettings) -> None:
    """A node started on another machine with a join token and no certificate yet joins
    first (security.join_*); one that holds its certificate starts as it is."""
    s, files = settings.security, _own_files(settings)
    if not s.join_gateway or files is None or (files.cert.exists() and files.key.exists()):
        if s.join_gateway and files is None and not s.insecure:
            raise SettingsError("joining needs security.ca_file, cert_file and key_file: where to write them")
        return
    try:
        await join(
            s.join_gateway,
            s.join_ca_fingerprint,
            s.join_token.get_secret_value(),
            settings.agent.node_id,
            settings.etcd.cluster_name,
            files,
        )
    except JoinError as exc:
        raise SettingsError(f"cannot join the cluster: {exc}") from None


def main() -> None:
    sys.exit(run_service(NAME, build, RingriftSettings, prepare=join_if_needed))
