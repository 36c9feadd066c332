"""Self-fencing agents (ARCHITECTURE.md, membership): an agent cut off from etcd kills
its running jobs before its lease expires, so the leader's retry elsewhere never runs
beside them; it reports them LOST, and rejoins when etcd is back. An agent restarted
while the leader retried its jobs stops the attempts it re-adopted."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import defaultdict
from pathlib import Path

import psutil
import pytest

from ringrift.common.v1 import common_pb2 as C
from ringrift.jobs.v1 import jobs_pb2, jobs_pb2_grpc
from ringrift.nodes.v1 import nodes_pb2, nodes_pb2_grpc
from ringrift_runtime.testing.proxy import TcpProxy
from tests.integration.cluster.conftest import LocalCluster
from tests.integration.cluster.test_jobs_end_to_end import CPU as CPU_ONLY
from tests.integration.cluster.test_jobs_end_to_end import start_control_plane
from tests.polling import until

pytestmark = pytest.mark.slow  # partitions and restarts watched for tens of seconds

CPU = {**CPU_ONLY, "RINGRIFT_AGENT__JOB_SLOTS": "4"}


class JobSampler:
    """Which node each job process runs on, sampled every few milliseconds from /proc (a
    job's environment names its job and its node's data directory)."""

    def __init__(self, root: Path) -> None:
        self._root = str(root)
        self.samples: list[tuple[float, dict[str, set[str]]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> JobSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            running: dict[str, set[str]] = defaultdict(set)
            for process in psutil.process_iter(["cmdline"]):
                if "builtin_jobs" not in " ".join(process.info["cmdline"] or []):
                    continue
                try:
                    env = process.environ()
                    if process.status() == psutil.STATUS_ZOMBIE:
                        continue
                except psutil.Error:
                    continue
                data_dir = env.get("RINGRIFT_JOB_DATA_DIR", "")
                if data_dir.startswith(self._root):
                    running[env["RINGRIFT_JOB_ID"]].add(Path(data_dir).parent.name)
            self.samples.append((time.monotonic(), running))

    def nodes_of(self, job_id: str) -> set[str]:
        return set().union(*(running.get(job_id, set()) for _, running in self.samples))

    def twice(self) -> list[tuple[str, set[str]]]:
        """Every (job, nodes) seen running on more than one node in the same sample."""
        return [(job, nodes) for _, running in self.samples for job, nodes in running.items() if len(nodes) > 1]


async def _jobs(stub, job_ids: list[str]) -> list[C.Job]:
    return [(await stub.GetJob(jobs_pb2.GetJobRequest(job_id=j), timeout=5)).job for j in job_ids]


def _describing(stub, job_ids: list[str]):
    async def describe() -> list[tuple[str, str, int, str]]:
        return [(C.JobState.Name(j.state), j.node_id, j.attempt, j.error[:80]) for j in await _jobs(stub, job_ids)]

    return describe


async def _start(cluster: LocalCluster) -> None:
    await start_control_plane(cluster, reap_seconds="0.5")
    await cluster.wait_for_leader()


def _sleeps(count: int, seconds: float) -> jobs_pb2.SubmitJobsRequest:
    spec = C.JobSpec(kind="selfplay", config_key="square8_2p", params={"seconds": str(seconds)})
    return jobs_pb2.SubmitJobsRequest(jobs=[jobs_pb2.SubmitJobRequest(spec=spec) for _ in range(count)])


async def test_an_agent_cut_off_from_etcd_stops_its_jobs_before_they_run_anywhere_else(cluster: LocalCluster) -> None:
    host, port = cluster.etcd.endpoint.rsplit(":", 1)
    proxy = TcpProxy(host, int(port))
    await proxy.start()
    try:
        await _start(cluster)
        await cluster.start_agent("cut-off", RINGRIFT_ETCD__ENDPOINTS=f'["{proxy.endpoint}"]', **CPU)
        with JobSampler(cluster.root) as sampler:
            async with cluster.channel("jobs") as channel, cluster.channel("nodes") as nodes_channel:
                stub = jobs_pb2_grpc.JobServiceStub(channel)
                nodes = nodes_pb2_grpc.NodeSelectorServiceStub(nodes_channel)
                job_ids = [j.job_id for j in (await stub.SubmitJobs(_sleeps(3, 600), timeout=10)).jobs]

                async def running_on(node: str, first: bool) -> bool:
                    jobs = await _jobs(stub, job_ids)
                    return all(
                        (j.state, j.node_id) == (C.JOB_STATE_RUNNING, node) and (j.attempt == 1) == first for j in jobs
                    )

                await until(
                    "three jobs on the agent", lambda: running_on("cut-off", True), describe=_describing(stub, job_ids)
                )
                await cluster.start_agent("other", **CPU)
                await proxy.cut()  # the agent reaches JobService still, but not etcd
                await until(
                    "retried elsewhere", lambda: running_on("other", False), describe=_describing(stub, job_ids)
                )

                proxy.heal()

                async def rejoined() -> bool:
                    listed = await nodes.ListNodes(nodes_pb2.ListNodesRequest(), timeout=5)
                    return "cut-off" in {n.node_id for n in listed.nodes}

                await until("the agent registered again", rejoined)
                await asyncio.sleep(1)  # still sampling: it starts nothing of the old jobs
                jobs = await _jobs(stub, job_ids)
        assert sampler.samples and all(sampler.nodes_of(j) == {"cut-off", "other"} for j in job_ids)
        assert sampler.twice() == []  # no job ever ran on two nodes at once
        for job in jobs:
            # Its LOST report may reach JobService before etcd expires the lease: a retry
            # placed on the fenced node is refused there and retried again.
            assert (job.state, job.node_id) == (C.JOB_STATE_RUNNING, "other") and job.attempt >= 2
            first = job.attempts[0]
            assert first.state == C.JOB_STATE_LOST and "lost its etcd lease" in first.error, first.error
            started = [a for a in job.attempts if a.started_at.ToNanoseconds()]
            assert [a.node_id for a in started] == ["cut-off", "other"]  # nothing started on the fenced node
            assert started[0].finished_at.ToNanoseconds() <= started[1].started_at.ToNanoseconds()
    finally:
        await proxy.stop()


async def test_an_agent_restarted_after_its_jobs_moved_on_stops_the_attempts_it_readopted(
    cluster: LocalCluster,
) -> None:
    await _start(cluster)
    agent = await cluster.start_agent("restarted", **CPU)
    async with cluster.channel("jobs") as channel:
        stub = jobs_pb2_grpc.JobServiceStub(channel)
        job_ids = [j.job_id for j in (await stub.SubmitJobs(_sleeps(2, 600), timeout=10)).jobs]

        async def states(node: str, attempt: int) -> bool:
            return all(
                (j.state, j.node_id, j.attempt) == (C.JOB_STATE_RUNNING, node, attempt)
                for j in await _jobs(stub, job_ids)
            )

        await until("two jobs running on the agent", lambda: states("restarted", 1))
        with JobSampler(cluster.root) as sampler:
            await asyncio.to_thread(agent.stop)  # a graceful stop: the jobs keep running to be re-adopted
            await cluster.start_agent("other", **CPU)
            await until("the jobs retried on the other node", lambda: states("other", 2))
            await asyncio.to_thread(agent.start)  # re-adopts both, learns they moved on, stops them

            async def stopped() -> bool:
                jobs = await _jobs(stub, job_ids)
                return all(j.attempts[0].state == C.JOB_STATE_CANCELLED for j in jobs)

            await until("the re-adopted attempts stopped", stopped)
            await asyncio.sleep(0.5)
        latest = sampler.samples[-1][1]
        assert all(latest.get(j) == {"other"} for j in job_ids), latest
        for job in await _jobs(stub, job_ids):
            assert (job.state, job.node_id, job.attempt) == (C.JOB_STATE_RUNNING, "other", 2)
            assert "superseded" in job.attempts[0].error
        for job_id in job_ids:  # the agents keep their jobs at a stop: none outlives the test
            await stub.CancelJob(jobs_pb2.CancelJobRequest(job_id=job_id, reason="test over"), timeout=10)
