"""Jobs end to end with real processes: StateService, NodeSelector, JobService, a
leading gateway that dispatches and reaps, and three agents with different declared
capabilities running real subprocesses."""

from __future__ import annotations

import asyncio
import signal
import time

import grpc
import pytest

from ringrift.agent.v1 import agent_pb2, agent_pb2_grpc
from ringrift.common.v1 import common_pb2 as C
from ringrift.jobs.v1 import jobs_pb2, jobs_pb2_grpc
from ringrift.nodes.v1 import nodes_pb2, nodes_pb2_grpc
from ringrift_client import InvalidArgument, NotFound, Unavailable
from ringrift_runtime.grpc.status import field_violations
from ringrift_runtime.security.identity import agent
from ringrift_runtime.testing.signals import kill_group
from tests.callers import gateway_client
from tests.integration.cluster.conftest import LocalCluster

A100 = {
    "RINGRIFT_AGENT__GPU__MODEL": "NVIDIA A100-SXM4-80GB",
    "RINGRIFT_AGENT__GPU__COUNT": "2",
    "RINGRIFT_AGENT__GPU__MEMORY_MB": "81920",
}
RTX4090 = {
    "RINGRIFT_AGENT__GPU__MODEL": "NVIDIA GeForce RTX 4090",
    "RINGRIFT_AGENT__GPU__COUNT": "1",
    "RINGRIFT_AGENT__GPU__MEMORY_MB": "24564",
    "RINGRIFT_AGENT__ROLES": '["selfplay", "gauntlet", "export"]',
}
CPU = {"RINGRIFT_AGENT__ROLES": '["selfplay", "gauntlet", "export"]'}
FAST = {"RINGRIFT_JOBS__RETRY_BACKOFF_BASE_SECONDS": "0.2", "RINGRIFT_JOBS__SPAWN_VERIFICATION_SECONDS": "10"}


async def start_control_plane(cluster: LocalCluster, dispatch_seconds: str = "0.2", reap_seconds: str = "1") -> None:
    """StateService, NodeSelector, JobService and a gateway that leads, dispatches and reaps."""
    await cluster.start_state()
    await cluster.start("nodes", "nodes")
    await cluster.start("jobs", "jobs", **FAST)
    await cluster.start(
        "gateway",
        "gw-a",
        RINGRIFT_GATEWAY__REAP_INTERVAL_SECONDS=reap_seconds,
        RINGRIFT_GATEWAY__DISPATCH_INTERVAL_SECONDS=dispatch_seconds,
    )


async def start_cluster(cluster: LocalCluster, dispatch_seconds: str = "0.2") -> dict:
    await start_control_plane(cluster, dispatch_seconds)
    agents = {
        "gpu-a100": await cluster.start_agent("gpu-a100", RINGRIFT_AGENT__JOB_SLOTS="6", **A100),
        "gpu-4090": await cluster.start_agent("gpu-4090", RINGRIFT_AGENT__JOB_SLOTS="6", **RTX4090),
        "cpu-only": await cluster.start_agent("cpu-only", RINGRIFT_AGENT__JOB_SLOTS="6", **CPU),
    }
    await cluster.wait_for_leader()
    return agents


def spec(kind: str, **requirements) -> C.JobSpec:
    params = {"seconds": "0.05"} if kind in ("selfplay", "train", "sleep") else {}
    return C.JobSpec(
        kind=kind,
        config_key="square8_2p",
        params=params,
        requirements=C.ResourceRequirements(min_free_ram_mb=128, **requirements),
    )


MIX = [
    lambda: spec("selfplay", needs_gpu=True),
    lambda: spec("selfplay"),
    lambda: spec("train", needs_gpu=True, min_gpu_memory_mb=40000),
    lambda: spec("export"),
    lambda: spec("gauntlet", needs_gpu=True),
    lambda: spec("sleep", labels={}),
]


async def wait_all(stub, job_ids: list[str], timeout: float) -> list[C.Job]:
    deadline = time.monotonic() + timeout
    while True:
        jobs = [(await stub.GetJob(jobs_pb2.GetJobRequest(job_id=j), timeout=5)).job for j in job_ids]
        if all(j.state in (C.JOB_STATE_SUCCEEDED, C.JOB_STATE_FAILED, C.JOB_STATE_CANCELLED) for j in jobs):
            return jobs
        if time.monotonic() > deadline:
            states = {C.JobState.Name(j.state) for j in jobs}
            pytest.fail(f"jobs did not finish in {timeout}s: states {states}")
        await asyncio.sleep(0.25)


async def test_two_hundred_mixed_jobs_succeed_where_they_may_run(cluster: LocalCluster) -> None:
    await start_cluster(cluster)
    async with (
        cluster.channel("jobs") as channel,
        cluster.channel("nodes") as nodes_channel,
    ):
        stub = jobs_pb2_grpc.JobServiceStub(channel)
        nodes = nodes_pb2_grpc.NodeSelectorServiceStub(nodes_channel)
        requests = [jobs_pb2.SubmitJobRequest(spec=MIX[i % len(MIX)]()) for i in range(200)]
        submitted = (await stub.SubmitJobs(jobs_pb2.SubmitJobsRequest(jobs=requests), timeout=30)).jobs
        assert len({j.job_id for j in submitted}) == 200
        finished = await wait_all(stub, [j.job_id for j in submitted], timeout=240)
        assert {C.JobState.Name(j.state) for j in finished} == {"JOB_STATE_SUCCEEDED"}, [
            j.error for j in finished if j.error
        ][:3]
        for job in finished:
            explained = await nodes.ExplainPlacement(nodes_pb2.ExplainPlacementRequest(spec=job.spec), timeout=5)
            usable = {s.node_id for s in explained.scores if s.usable}
            assert job.node_id in usable, (job.spec, job.node_id, usable)
            if job.spec.kind == "train":
                assert job.node_id == "gpu-a100"  # the only training-role GPU with 40 GB
            if job.spec.requirements.needs_gpu:
                assert job.node_id != "cpu-only"

        # Finished jobs move to history and stay readable.
        await asyncio.sleep(1.1)
        epoch = (await cluster.epoch()).epoch
        cleaned = await stub.CleanupOldCompletedJobs(
            jobs_pb2.CleanupOldCompletedJobsRequest(older_than_seconds=1, epoch=epoch), timeout=30
        )
        assert cleaned.moved == 200 and cleaned.deleted == 0  # history is kept 30 days
        assert not (await stub.ListJobs(jobs_pb2.ListJobsRequest(), timeout=5)).jobs
        archived = (await stub.GetJob(jobs_pb2.GetJobRequest(job_id=finished[0].job_id), timeout=5)).job
        assert archived.state == C.JOB_STATE_SUCCEEDED and archived.attempts


async def test_bad_submissions_name_the_field_and_queue_nothing(cluster: LocalCluster) -> None:
    await start_cluster(cluster)
    async with cluster.channel("jobs") as channel:
        stub = jobs_pb2_grpc.JobServiceStub(channel)
        cases = [
            (C.JobSpec(kind="rm-rf"), "spec.kind"),
            (C.JobSpec(kind="sleep", params={"seconds": "-5"}), "spec.params[seconds]"),
            (C.JobSpec(kind="sleep", params={"seconds": "1 && reboot"}), "spec.params[seconds]"),
            (C.JobSpec(kind="sleep", params={"shell": "x"}), "spec.params[shell]"),
            (C.JobSpec(kind="sleep", config_key="hexagonal"), "spec.config_key"),
            (C.JobSpec(), "spec.kind"),
        ]
        for bad, field in cases:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.SubmitJob(jobs_pb2.SubmitJobRequest(spec=bad), timeout=10)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert field in field_violations(caught.value), caught.value.details()
        assert not (await stub.ListJobs(jobs_pb2.ListJobsRequest(), timeout=5)).jobs
        watch = stub.WatchJobs(jobs_pb2.WatchJobsRequest(), timeout=60)
        first = await stub.SubmitJob(jobs_pb2.SubmitJobRequest(spec=spec("sleep"), idempotency_key="once"), timeout=10)
        again = await stub.SubmitJob(jobs_pb2.SubmitJobRequest(spec=spec("sleep"), idempotency_key="once"), timeout=10)
        assert first.created and not again.created and first.job.job_id == again.job.job_id

        # The job's changes stream in order, and its output can be read through JobService.
        seen = []
        while C.JOB_STATE_SUCCEEDED not in seen:
            update = await asyncio.wait_for(watch.read(), 30)
            assert update.job.job_id == first.job.job_id
            seen.append(update.job.state)
        watch.cancel()
        sequences_ok = seen[0] == C.JOB_STATE_PENDING or seen[0] in (C.JOB_STATE_SCHEDULED, C.JOB_STATE_RUNNING)
        assert sequences_ok and seen[-1] == C.JOB_STATE_SUCCEEDED
        logs = b"".join(
            [
                c.data
                async for c in stub.StreamJobLogs(jobs_pb2.StreamJobLogsRequest(job_id=first.job.job_id), timeout=10)
            ]
        )
        assert b"sleeping 0.05s" in logs


async def test_jobs_of_a_dead_node_are_retried_elsewhere_and_late_results_change_nothing(cluster: LocalCluster) -> None:
    agents = await start_cluster(cluster)
    victim = agents["cpu-only"]
    async with cluster.channel("jobs") as channel:
        stub = jobs_pb2_grpc.JobServiceStub(channel)
        long = C.JobSpec(
            kind="sleep",
            params={"seconds": "4"},
            requirements=C.ResourceRequirements(min_free_ram_mb=128, preferred_node_ids=["cpu-only"]),
        )
        job_ids = [
            (await stub.SubmitJob(jobs_pb2.SubmitJobRequest(spec=long), timeout=10)).job.job_id for _ in range(12)
        ]
        deadline = time.monotonic() + 30
        while True:
            jobs = [(await stub.GetJob(jobs_pb2.GetJobRequest(job_id=j), timeout=5)).job for j in job_ids]
            on_victim = [j for j in jobs if j.node_id == "cpu-only" and j.state == C.JOB_STATE_RUNNING]
            if on_victim:
                break
            assert time.monotonic() < deadline, "no job ran on the victim"
            await asyncio.sleep(0.1)
        # The node dies: its agent and every job process on it.
        async with cluster.channel(victim) as agent_channel:
            running = await agent_pb2_grpc.NodeAgentServiceStub(agent_channel).ListJobs(
                agent_pb2.ListJobsRequest(running_only=True), timeout=5
            )
        victim.signal(signal.SIGKILL)
        # A job not spawned yet reports pid 0: never signalled; every spawned one dies.
        assert all(kill_group(s.pid, str(victim.workdir)) for s in running.jobs if s.pid > 0)
        lost_ids = {j.job_id for j in on_victim}
        finished = await wait_all(stub, job_ids, timeout=90)
        for job in finished:
            assert job.state == C.JOB_STATE_SUCCEEDED, job.error
            if job.job_id in lost_ids:
                assert job.attempt >= 2 and job.node_id != "cpu-only"
                assert job.attempts[0].state == C.JOB_STATE_LOST
            # No job ran twice at once: each attempt ended before the next started.
            for earlier, later in zip(job.attempts, job.attempts[1:], strict=False):
                assert earlier.finished_at.ToNanoseconds() <= later.started_at.ToNanoseconds()

        # A late completion of the superseded attempt is recorded and changes nothing.
        some = next(j for j in finished if j.job_id in lost_ids)
        report = jobs_pb2.ReportJobEventRequest(
            job_id=some.job_id, attempt=1, node_id="cpu-only", state=C.JOB_STATE_SUCCEEDED, result_json='{"late": 1}'
        )
        async with cluster.channel("jobs", agent("cpu-only", "test")) as as_victim:
            late = await jobs_pb2_grpc.JobServiceStub(as_victim).ReportJobEvent(report, timeout=5)
        assert not late.applied
        # Another node cannot report in the victim's name: its certificate says who it is.
        async with cluster.channel("jobs", agent("gpu-box", "test")) as as_other:
            with pytest.raises(grpc.aio.AioRpcError) as forged:
                await jobs_pb2_grpc.JobServiceStub(as_other).ReportJobEvent(report, timeout=5)
        assert forged.value.code() == grpc.StatusCode.PERMISSION_DENIED
        # A CPU time that is not a number of seconds is refused, naming the field.
        negative = jobs_pb2.ReportJobEventRequest()
        negative.CopyFrom(report)
        negative.cpu_seconds = -5.0
        async with cluster.channel("jobs", agent("cpu-only", "test")) as as_victim:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await jobs_pb2_grpc.JobServiceStub(as_victim).ReportJobEvent(negative, timeout=5)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "cpu_seconds" in field_violations(refused.value)
        after = (await stub.GetJob(jobs_pb2.GetJobRequest(job_id=some.job_id), timeout=5)).job
        assert (after.state, after.result_json, after.attempt) == (some.state, some.result_json, some.attempt)


async def test_top_ups_respect_the_per_node_cooldown(cluster: LocalCluster) -> None:
    await cluster.start_state()
    await cluster.start("nodes", "nodes")
    await cluster.start("jobs", "jobs", RINGRIFT_JOBS__DISPATCH_COOLDOWN_SECONDS="60", **FAST)
    await cluster.start("gateway", "gw-a", RINGRIFT_GATEWAY__DISPATCH_INTERVAL_SECONDS="0.2")
    await cluster.start_agent("only-node", RINGRIFT_AGENT__JOB_SLOTS="8", **CPU)
    await cluster.wait_for_leader()
    top_up = spec("selfplay")
    top_up.top_up = True
    async with cluster.channel("jobs") as channel:
        stub = jobs_pb2_grpc.JobServiceStub(channel)

        async def submit(job_spec, count: int) -> list[str]:
            reply = await stub.SubmitJobs(
                jobs_pb2.SubmitJobsRequest(jobs=[jobs_pb2.SubmitJobRequest(spec=job_spec)] * count), timeout=10
            )
            return [j.job_id for j in reply.jobs]

        first = await submit(top_up, 3)
        await wait_all(stub, first, timeout=30)  # one top-up round reaches the node
        second = await submit(top_up, 3)
        ordinary = await submit(spec("selfplay"), 1)
        await wait_all(stub, ordinary, timeout=30)  # other work is not held back
        await asyncio.sleep(1.0)
        held = [(await stub.GetJob(jobs_pb2.GetJobRequest(job_id=j), timeout=5)).job.state for j in second]
        assert held == [C.JOB_STATE_PENDING] * 3  # the node is cooling down from its last top-up


async def test_the_gateway_facade_passes_jobs_events_and_placement_through(cluster: LocalCluster) -> None:
    """Through ringrift_client, as users call it: a job's events, state, listing and log,
    placement, and refusals as typed errors naming the field."""
    await start_cluster(cluster)
    async with gateway_client(cluster.pki, cluster.processes["gw-a"].address) as gateway:
        events = gateway.watch(types=[C.EVENT_TYPE_JOB_SUCCEEDED], timeout=60)
        submitted = await gateway.submit_job(spec=spec("sleep"))
        assert submitted.created
        done = await asyncio.wait_for(anext(events), 30)
        assert done.subject == submitted.job.job_id
        await events.aclose()
        job = await gateway.wait(submitted.job.job_id, timeout=30)
        assert job.state == C.JOB_STATE_SUCCEEDED
        listed = await gateway.list_jobs(kind="sleep")
        assert [j.job_id for j in listed.jobs] == [job.job_id]
        assert b"sleeping" in b"".join([chunk async for chunk in gateway.logs(job.job_id)])
        scores = (await gateway.explain_placement(spec=spec("train", needs_gpu=True))).scores
        assert [s.node_id for s in scores if s.usable] == ["gpu-a100"]

        with pytest.raises(InvalidArgument) as refused:
            await gateway.submit_job(spec=C.JobSpec(kind="sleep", params={"seconds": "; reboot"}))
        assert "spec.params[seconds]" in refused.value.fields
        with pytest.raises(NotFound):
            await gateway.cancel_job(job_id="01NOSUCHJOB")

        await asyncio.to_thread(cluster.processes["jobs"].stop)
        with pytest.raises(Unavailable):
            await gateway.get_job(job_id=job.job_id)


async def test_a_submission_is_dispatched_at_once_not_at_the_next_round(cluster: LocalCluster) -> None:
    """Dispatch runs on every submission (through the leading gateway the submission
    itself wakes its JobDispatcher; through another replica the JOB_SUBMITTED event does):
    with its safety round set to ten minutes, jobs submitted one after the other through
    the gateway still run within seconds."""
    await start_cluster(cluster, dispatch_seconds="600")
    async with gateway_client(cluster.pki, cluster.processes["gw-a"].address) as gateway:
        for _ in range(3):  # the first might meet the term's first round; the others cannot
            started = time.monotonic()
            submitted = await gateway.submit_job(spec=spec("sleep"))
            while True:
                job = (await gateway.get_job(job_id=submitted.job.job_id)).job
                if job.state == C.JOB_STATE_SUCCEEDED:
                    break
                assert time.monotonic() - started < 60, f"job {job.job_id} still {C.JobState.Name(job.state)}"
                await asyncio.sleep(0.05)


async def test_following_a_job_no_node_can_run_yet_streams_its_output_once_it_is_placed(cluster: LocalCluster) -> None:
    """`logs --follow` right after a submission, before any agent has joined: JobService
    waits on the job's events for its placement (it used to answer NOT_FOUND, and the CLI
    asked GetJob again every 0.1 s), then streams the attempt's output to its end."""
    await start_control_plane(cluster)
    await cluster.wait_for_leader()
    async with gateway_client(cluster.pki, cluster.processes["gw-a"].address) as gateway:
        submitted = await gateway.submit_job(spec=spec("sleep"))

        async def output() -> bytes:
            return b"".join([chunk async for chunk in gateway.logs(submitted.job.job_id, follow=True)])

        following = asyncio.create_task(output())
        await asyncio.sleep(1)
        assert not following.done(), following  # no node: still waiting, not refused
        assert (await gateway.get_job(job_id=submitted.job.job_id)).job.state == C.JOB_STATE_PENDING
        await cluster.start_agent("cpu-only", **CPU)
        assert b"sleeping 0.05s" in await asyncio.wait_for(following, 60)
        assert (await gateway.get_job(job_id=submitted.job.job_id)).job.state == C.JOB_STATE_SUCCEEDED
