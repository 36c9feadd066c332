"""How many trivial jobs per second does the job path carry end to end?

Real StateService (SQLite), NodeSelector and JobService processes; 100 simulated agents
(gRPC servers in this process, registered in etcd like real agents) that accept RunJob
and at once report the job SUCCEEDED to JobService; this process acts as the leader and
keeps calling DispatchPendingJobs. A run submits N jobs in batches and ends when all
have succeeded. The whole cluster runs twice in the same run: with mutual TLS on every
connection (the default; each simulated agent presents its own certificate and reports
as itself) and in plaintext (security.insecure), so the cost of security is the ratio.
Reference in the same run: how many bare subprocesses per second this machine can spawn
and reap (the floor a real agent pays per job). StateService's SQLite fsyncs every
commit (state.sqlite_synchronous FULL); ``--synchronous both`` also runs the mutual-TLS
cluster with NORMAL, so the cost of durability is the ratio.

    .venv/bin/python -m bench.jobs_throughput [--jobs 2000] [--agents 100] [--runs 5] [--security both|tls|plaintext]
        [--synchronous FULL|both] [--quick] [--json]

``--quick``: 1,000 jobs, 2 runs a mode (under 2 minutes). ``--json`` prints one object:
jobs, agents, runs, jobs_per_s (mutual TLS, median; plaintext when only that ran),
tls_per_s, plaintext_per_s, ratio_tls_to_plaintext, normal_per_s, ratio_full_to_normal
(null when not measured) and spawn_per_s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench._common import machine, median_range, table
from bench._security import CLUSTER, BenchSecurity, agent, gateway, service
from ringrift.agent.v1 import agent_pb2, agent_pb2_grpc
from ringrift.common.v1 import common_pb2
from ringrift.jobs.v1 import jobs_pb2, jobs_pb2_grpc
from ringrift.state.v1 import state_pb2, state_pb2_grpc
from ringrift_contracts import access
from ringrift_runtime.cluster.etcd import Keyspace, make_client
from ringrift_runtime.cluster.lease import LeaseKeeper
from ringrift_runtime.grpc.server import GrpcHost, registration
from ringrift_runtime.local.etcd import COMPACTION_ARGS
from ringrift_runtime.local.processes import ServiceProcess
from ringrift_settings import RingriftSettings

SUCCEEDED = common_pb2.JOB_STATE_SUCCEEDED


class SimulatedAgent(agent_pb2_grpc.NodeAgentServiceServicer):
    def __init__(self, node_id: str, jobs: jobs_pb2_grpc.JobServiceStub) -> None:
        self.node_id = node_id
        self._jobs = jobs
        self._pending: set[asyncio.Task] = set()

    async def ListJobTemplates(self, request, context):
        return agent_pb2.ListJobTemplatesResponse(templates=[agent_pb2.JobTemplate(kind="noop")])

    async def RunJob(self, request, context):
        task = asyncio.ensure_future(
            self._jobs.ReportJobEvent(
                jobs_pb2.ReportJobEventRequest(
                    job_id=request.job_id,
                    attempt=request.attempt,
                    node_id=self.node_id,
                    state=SUCCEEDED,
                    result_json="{}",
                    agent_sequence=1,
                )
            )
        )
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return agent_pb2.RunJobResponse(
            status=agent_pb2.AgentJobStatus(
                job_id=request.job_id, attempt=request.attempt, state=common_pb2.JOB_STATE_RUNNING
            ),
            started=True,
        )


def spawn_rate(count: int = 200) -> float:
    started = time.perf_counter()
    for _ in range(count):
        subprocess.run(["/bin/true"], check=True)
    return count / (time.perf_counter() - started)


async def succeeded(state: state_pb2_grpc.StateServiceStub) -> int:
    stats = await state.GetClusterStats(state_pb2.GetClusterStatsRequest())
    return sum(c.count for c in stats.jobs if c.state == SUCCEEDED)


async def one_run(jobs: jobs_pb2_grpc.JobServiceStub, state, count: int, epoch: int) -> float:
    before = await succeeded(state)
    spec = common_pb2.JobSpec(kind="noop", requirements=common_pb2.ResourceRequirements(min_free_ram_mb=1))
    started = time.perf_counter()
    for offset in range(0, count, 500):
        batch = [jobs_pb2.SubmitJobRequest(spec=spec)] * min(500, count - offset)
        await jobs.SubmitJobs(jobs_pb2.SubmitJobsRequest(jobs=batch), timeout=60)
    checked = 0.0
    while True:
        await jobs.DispatchPendingJobs(jobs_pb2.DispatchPendingJobsRequest(limit=1000, epoch=epoch), timeout=60)
        if time.perf_counter() - checked > 0.25:  # the progress probe is a query too: not too often
            checked = time.perf_counter()
            if await succeeded(state) - before >= count:
                break
        await asyncio.sleep(0.01)
    return count / (time.perf_counter() - started)


@dataclass
class SimulatedCluster:
    """Real StateService, NodeSelector and JobService processes on one etcd, simulated
    agents in this process, and this process holding the leader's epoch."""

    root: Path
    etcd: Any
    processes: dict[str, ServiceProcess]
    jobs: jobs_pb2_grpc.JobServiceStub
    state: state_pb2_grpc.StateServiceStub
    epoch: int


@asynccontextmanager
async def simulated_cluster(
    agent_count: int,
    security: BenchSecurity,
    env_for: dict[str, dict[str, str]] | None = None,
    refresh_seconds: float = 0.0,
    etcd_compaction: tuple[str, ...] = COMPACTION_ARGS,
    job_slots: int = 50,
) -> AsyncIterator[SimulatedCluster]:
    """A fresh cluster secured as ``security`` says; ``env_for[process]`` adds settings to
    a process; with ``refresh_seconds`` every agent re-puts its NodeInfo that often, as a
    real agent does; each agent offers ``job_slots`` slots."""
    root = Path(tempfile.mkdtemp(prefix="ringrift-bench-jobs-"))
    etcd = security.etcd(root / "etcd", etcd_compaction)
    await asyncio.to_thread(etcd.start)
    etcd_settings = security.etcd_settings(etcd)
    env = {
        "RINGRIFT_ETCD__ENDPOINTS": f'["{etcd.endpoint}"]',
        "RINGRIFT_ETCD__CLUSTER_NAME": CLUSTER,
        "RINGRIFT_METRICS__ENABLED": "false",
        "RINGRIFT_LOGGING__LEVEL": "WARNING",
    }

    def process(name: str) -> ServiceProcess:
        extra = (env_for or {}).get(name, {})
        return ServiceProcess(name, root / name, env={**env, **security.env(service(name, CLUSTER)), **extra})

    env_for = {**(env_for or {})}
    env_for["state"] = {"RINGRIFT_STATE__DATABASE_URL": f"sqlite+aiosqlite:///{root}/s.db", **env_for.get("state", {})}
    state = process("state")
    await asyncio.to_thread(state.start)
    env["RINGRIFT_ENDPOINTS__STATE"] = state.address
    nodes = process("nodes")
    await asyncio.to_thread(nodes.start)
    env["RINGRIFT_ENDPOINTS__NODES"] = nodes.address
    jobs_process = process("jobs")
    await asyncio.to_thread(jobs_process.start)
    processes = {"jobs": jobs_process, "nodes": nodes, "state": state}

    keeper = LeaseKeeper(etcd_settings, ttl=10, name="bench-agents")
    lease = await keeper.start()
    client = make_client(etcd_settings)
    hosts: list[GrpcHost] = []
    leader = gateway("bench-leader", CLUSTER)
    channels = [
        security.channel(jobs_process.address, service("jobs", CLUSTER), leader),
        security.channel(state.address, service("state", CLUSTER), leader),
    ]
    infos: dict[bytes, bytes] = {}
    refresher: asyncio.Task | None = None
    try:
        for index in range(agent_count):
            node_id = f"sim-{index}"
            identity = agent(node_id, CLUSTER)
            settings = RingriftSettings(
                server={"port": 0},
                metrics={"enabled": False},
                logging={"level": "WARNING"},
                etcd={"cluster_name": CLUSTER},
                security=security.settings(identity),
            )
            reports = security.channel(jobs_process.address, service("jobs", CLUSTER), identity)  # as itself
            channels.append(reports)
            simulated = SimulatedAgent(node_id, jobs_pb2_grpc.JobServiceStub(reports))
            host = GrpcHost(
                node_id,
                [registration("ringrift.agent.v1.NodeAgentService", simulated)],
                settings,
                port=0,
                access=access,
            )
            await host.start()
            hosts.append(host)
            info = common_pb2.NodeInfo(
                node_id=node_id,
                address=host.address,
                job_kinds=["noop"],
                job_slots=job_slots,
                declared=common_pb2.NodeCapabilities(cpu_cores=16, roles=[common_pb2.NODE_ROLE_SELFPLAY]),
                metrics=common_pb2.NodeMetrics(free_ram_mb=64_000),
            )
            infos[Keyspace(CLUSTER).node(node_id)] = info.SerializeToString()
            await client.put(Keyspace(CLUSTER).node(node_id), infos[Keyspace(CLUSTER).node(node_id)], lease=lease)

        async def refresh() -> None:
            while True:
                await asyncio.sleep(refresh_seconds)
                for key, value in infos.items():
                    await client.put(key, value, lease=lease)

        if refresh_seconds:
            refresher = asyncio.create_task(refresh(), name="node-info-refresh")
        epoch = await security.issue_epoch(etcd, state.address)
        await asyncio.sleep(1)  # the selector and JobService see the members
        yield SimulatedCluster(
            root,
            etcd,
            processes,
            jobs_pb2_grpc.JobServiceStub(channels[0]),
            state_pb2_grpc.StateServiceStub(channels[1]),
            epoch,
        )
    finally:
        if refresher is not None:
            refresher.cancel()
            await asyncio.gather(refresher, return_exceptions=True)
        for channel in channels:
            await channel.close()
        for host in hosts:
            await host.stop(grace=0)
        await client.close()
        await keeper.stop()
        for running in processes.values():
            await asyncio.to_thread(running.stop)
        await asyncio.to_thread(etcd.stop)


async def measure(
    job_count: int, agent_count: int, runs: int, security: BenchSecurity, synchronous: str = "FULL"
) -> list[float]:
    """Jobs per second of each run on a fresh cluster secured as ``security`` says, its
    StateService's SQLite committing with ``synchronous``."""
    env_for = {"state": {"RINGRIFT_STATE__SQLITE_SYNCHRONOUS": synchronous}}
    async with simulated_cluster(agent_count, security, env_for) as cluster:
        await one_run(cluster.jobs, cluster.state, min(500, job_count), cluster.epoch)  # warm-up
        return [await one_run(cluster.jobs, cluster.state, job_count, cluster.epoch) for _ in range(runs)]


async def main(
    job_count: int, agent_count: int, runs: int, modes: list[bool], normal_too: bool, as_json: bool = False
) -> None:
    rates: dict[bool, list[float]] = {}
    for secure in modes:
        with tempfile.TemporaryDirectory(prefix="ringrift-bench-pki-") as pki_root:
            rates[secure] = await measure(job_count, agent_count, runs, BenchSecurity(Path(pki_root), secure))
    normal: list[float] = []
    if normal_too:
        with tempfile.TemporaryDirectory(prefix="ringrift-bench-pki-") as pki_root:
            normal = await measure(job_count, agent_count, runs, BenchSecurity(Path(pki_root), True), "NORMAL")
    spawns = [spawn_rate() for _ in range(5)]

    def median(values: list[float]) -> float | None:
        return round(statistics.median(values), 1) if values else None

    tls, plaintext, full_normal = median(rates.get(True, [])), median(rates.get(False, [])), median(normal)
    if as_json:
        figures = {
            "jobs": job_count,
            "agents": agent_count,
            "runs": runs,
            "jobs_per_s": tls if tls is not None else plaintext,
            "tls_per_s": tls,
            "plaintext_per_s": plaintext,
            "ratio_tls_to_plaintext": round(tls / plaintext, 3) if tls and plaintext else None,
            "normal_per_s": full_normal,
            "ratio_full_to_normal": round(tls / full_normal, 3) if tls and full_normal else None,
            "spawn_per_s": median(spawns),
        }
        print(json.dumps(figures))
        return
    rows = [
        (
            f"jobs per second, {'mutual TLS' if secure else 'plaintext'} (submit → all SUCCEEDED)",
            median_range(rates[secure]),
            f"bare subprocess spawns per second: {median_range(spawns)}" if index == 0 else "",
        )
        for index, secure in enumerate(modes)
    ]
    if tls and plaintext:
        rows.append(("mutual TLS / plaintext (medians)", f"{tls / plaintext:.2f}", "goal ≥ 0.90"))
    if full_normal:
        rows.append(("jobs per second, mutual TLS, SQLite synchronous=NORMAL", median_range(normal), ""))
        if tls:
            rows.append(
                ("FULL (every commit fsynced) / NORMAL (medians)", f"{tls / full_normal:.2f}", "the cost of durability")
            )
    print(
        table(
            f"Trivial jobs end to end, {agent_count} simulated agents, {job_count} jobs per run — {machine()}",
            rows,
        )
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--agents", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--security", choices=["both", "tls", "plaintext"], default="both")
    parser.add_argument("--synchronous", choices=["FULL", "both"], default="FULL")
    parser.add_argument("--quick", action="store_true", help="1,000 jobs, 2 runs a mode")
    parser.add_argument("--json", action="store_true", help="one JSON object of the figures")
    args = parser.parse_args()
    modes = {"both": [True, False], "tls": [True], "plaintext": [False]}[args.security]
    jobs, runs = (1000, 2) if args.quick else (args.jobs, args.runs)
    asyncio.run(main(jobs, args.agents, runs, modes, args.synchronous == "both", args.json))
