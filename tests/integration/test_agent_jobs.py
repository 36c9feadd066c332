"""The agent runs real jobs: idempotent RunJob, results, failures, timeouts, cancel,
logs, strict parameter validation, durable event delivery, and re-adoption after an
agent restart. JobService is a recording stand-in served over real gRPC."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import grpc
import psutil
import pytest

from ringrift.agent.v1 import agent_pb2, agent_pb2_grpc
from ringrift.common.v1 import common_pb2
from ringrift.jobs.v1 import jobs_pb2, jobs_pb2_grpc
from ringrift_runtime.grpc.server import registration
from ringrift_runtime.grpc.status import field_violations
from ringrift_runtime.local.etcd import EtcdServer
from ringrift_runtime.local.processes import ServiceProcess
from ringrift_runtime.settings import RingriftSettings
from ringrift_runtime.testing.inprocess import serve_in_process

S = common_pb2


class RecordingJobService(jobs_pb2_grpc.JobServiceServicer):
    def __init__(self) -> None:
        self.events: list[jobs_pb2.ReportJobEventRequest] = []
        self.available = True

    async def ReportJobEvent(self, request, context):
        if not self.available:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "down for the test")
        self.events.append(request)
        return jobs_pb2.ReportJobEventResponse(applied=True)

    def states(self, job_id: str) -> list[int]:
        return [e.state for e in self.events if e.job_id == job_id]


CUSTOM_CATALOG = """
[templates.copy]
argv = ["{python}", "-c", "import sys; print(open(sys.argv[1]).read())", "{data_dir}/{path}"]
[templates.copy.params.path]
type = "data_path"
required = true
"""


@pytest.fixture
async def jobs_service():
    recorder = RecordingJobService()
    settings = RingriftSettings(server={"port": 0}, metrics={"enabled": False})
    async with serve_in_process([registration("ringrift.jobs.v1.JobService", recorder)], settings) as host:
        yield recorder, host.address


@pytest.fixture
async def agent(jobs_service, etcd: EtcdServer, tmp_path: Path):
    recorder, address = jobs_service
    catalog = tmp_path / "extra.toml"
    default = (Path(__file__).resolve().parents[2] / "services/agent/templates/default.toml").read_text()
    catalog.write_text(default + CUSTOM_CATALOG)
    process = ServiceProcess(
        "agent",
        tmp_path / "agent",
        env={
            "RINGRIFT_AGENT__NODE_ID": "worker-1",
            "RINGRIFT_AGENT__DATA_DIR": str(tmp_path / "data"),
            "RINGRIFT_AGENT__TEMPLATES_FILE": str(catalog),
            "RINGRIFT_AGENT__KILL_GRACE_SECONDS": "1",
            "RINGRIFT_ENDPOINTS__JOBS": address,
            "RINGRIFT_ETCD__ENDPOINTS": f'["{etcd.endpoint}"]',
            "RINGRIFT_METRICS__ENABLED": "false",
        },
    )
    await asyncio.to_thread(process.start)
    try:
        yield process, recorder
    finally:
        await asyncio.to_thread(process.stop)


def run_request(job_id: str, kind: str = "sleep", attempt: int = 1, epoch: int = 5, timeout: int = 0, **params: str):
    return agent_pb2.RunJobRequest(
        job_id=job_id, attempt=attempt, epoch=epoch,
        spec=S.JobSpec(kind=kind, params=params, timeout_seconds=timeout),
    )


async def wait_state(stub, job_id: str, state: int, timeout: float = 15) -> agent_pb2.AgentJobStatus:
    deadline = time.monotonic() + timeout
    while True:
        status = (await stub.GetJobStatus(agent_pb2.GetJobStatusRequest(job_id=job_id), timeout=5)).status
        if status.state == state:
            return status
        assert time.monotonic() < deadline, f"{job_id} stayed {S.JobState.Name(status.state)}: {status.error}"
        await asyncio.sleep(0.05)


def _distinct(states: list[int]) -> list[int]:
    return [state for index, state in enumerate(states) if index == 0 or states[index - 1] != state]


async def wait_events(recorder: RecordingJobService, job_id: str, states: list[int], timeout: float = 15) -> None:
    """Delivery is at least once: an agent killed after JobService acknowledged an event
    but before it deleted it from its outbox sends it again after its restart (JobService
    ignores the repeat). So the states must arrive in this order, repeats aside, and a
    repeat must be the same event (same agent sequence)."""
    deadline = time.monotonic() + timeout
    while _distinct(recorder.states(job_id)) != states:
        assert time.monotonic() < deadline, f"events for {job_id}: {recorder.states(job_id)}"
        await asyncio.sleep(0.05)
    events = [e for e in recorder.events if e.job_id == job_id]
    for earlier, later in zip(events, events[1:]):
        if earlier.state == later.state:
            assert earlier.agent_sequence == later.agent_sequence, "a state was reported twice as different events"


@pytest.fixture
async def stub(agent):
    process, _ = agent
    async with grpc.aio.insecure_channel(process.address) as channel:
        yield agent_pb2_grpc.NodeAgentServiceStub(channel)


async def test_job_runs_reports_and_streams_logs(agent, stub) -> None:
    _, recorder = agent
    reply = await stub.RunJob(run_request("job-ok", seconds="0.2"), timeout=10)
    assert reply.started and reply.status.state == S.JOB_STATE_RUNNING and reply.status.pid > 0
    status = await wait_state(stub, "job-ok", S.JOB_STATE_SUCCEEDED)
    assert status.result_json == '{"slept_seconds": 0.2}'
    await wait_events(recorder, "job-ok", [S.JOB_STATE_RUNNING, S.JOB_STATE_SUCCEEDED])
    assert recorder.events[-1].result_json == status.result_json and recorder.events[-1].node_id == "worker-1"
    logs = b"".join([c.data async for c in stub.StreamJobLogs(agent_pb2.StreamJobLogsRequest(job_id="job-ok"), timeout=10)])
    assert b"sleeping 0.2s" in logs
    templates = await stub.ListJobTemplates(agent_pb2.ListJobTemplatesRequest(), timeout=5)
    assert {"sleep", "echo", "copy"} <= {t.kind for t in templates.templates}


async def test_repeated_run_never_starts_a_second_process(agent, stub) -> None:
    _, recorder = agent
    first = await stub.RunJob(run_request("job-once", seconds="1"), timeout=10)
    again = await asyncio.gather(*(stub.RunJob(run_request("job-once", seconds="1"), timeout=10) for _ in range(5)))
    assert first.started and not any(r.started for r in again)
    assert {r.status.pid for r in again} == {first.status.pid}
    running = await stub.ListJobs(agent_pb2.ListJobsRequest(running_only=True), timeout=5)
    assert [j.job_id for j in running.jobs] == ["job-once"]
    await wait_state(stub, "job-once", S.JOB_STATE_SUCCEEDED)
    await wait_events(recorder, "job-once", [S.JOB_STATE_RUNNING, S.JOB_STATE_SUCCEEDED])


async def test_failure_timeout_and_cancel_kill_the_process_group(agent, stub) -> None:
    await stub.RunJob(run_request("job-fail", exit_code="3"), timeout=10)
    failed = await wait_state(stub, "job-fail", S.JOB_STATE_FAILED)
    assert failed.exit_code == 3 and "exit code 3" in failed.error

    slow = await stub.RunJob(run_request("job-slow", seconds="60", timeout=1), timeout=10)
    timed_out = await wait_state(stub, "job-slow", S.JOB_STATE_FAILED, timeout=10)
    assert "timed out" in timed_out.error and not psutil.pid_exists(slow.status.pid)

    long = await stub.RunJob(run_request("job-cancel", seconds="60"), timeout=10)
    group = os.getpgid(long.status.pid)
    cancelled = await stub.CancelJob(agent_pb2.CancelJobRequest(job_id="job-cancel", epoch=5), timeout=10)
    assert cancelled.status.state == S.JOB_STATE_CANCELLED
    assert not [p for p in psutil.process_iter(["pid"]) if _pgid(p.pid) == group]


def _pgid(pid: int) -> int:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return -1


BAD = [
    (run_request("j1", kind="rm"), "spec.kind"),
    (run_request("j1", seconds="-1"), "spec.params[seconds]"),
    (run_request("j1", seconds="1; rm -rf /"), "spec.params[seconds]"),
    (run_request("j1", bogus="1"), "spec.params[bogus]"),
    (run_request("j1", kind="echo", message="hi; rm -rf /"), "spec.params[message]"),
    (run_request("j1", kind="echo", message="$(reboot)"), "spec.params[message]"),
    (run_request("j1", kind="echo"), "spec.params[message]"),
    (run_request("j1", kind="copy", path="../../etc/passwd"), "spec.params[path]"),
    (run_request("j1", kind="copy", path="/etc/passwd"), "spec.params[path]"),
    (run_request("", seconds="1"), "job_id"),
    (run_request("j1", attempt=0), "attempt"),
    (run_request("j1", epoch=0), "epoch"),
    (run_request("j1", kind="echo", message="x" * 70_000), "request"),
]


@pytest.mark.parametrize(("request_message", "field"), BAD, ids=[f for _, f in BAD])
async def test_bad_run_requests_name_the_field_and_run_nothing(agent, stub, request_message, field) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.RunJob(request_message, timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(caught.value), caught.value.details()
    assert not (await stub.ListJobs(agent_pb2.ListJobsRequest(), timeout=5)).jobs


async def test_stale_dispatch_is_refused(agent, stub) -> None:
    await stub.RunJob(run_request("job-new", epoch=9), timeout=10)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.RunJob(run_request("job-old", epoch=8), timeout=10)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert [j.job_id for j in (await stub.ListJobs(agent_pb2.ListJobsRequest(), timeout=5)).jobs] == ["job-new"]


async def test_events_wait_on_disk_until_jobservice_is_back_even_across_a_restart(agent, stub) -> None:
    process, recorder = agent
    recorder.available = False
    await stub.RunJob(run_request("job-buffered"), timeout=10)
    await wait_state(stub, "job-buffered", S.JOB_STATE_SUCCEEDED)
    await asyncio.to_thread(process.stop)
    await asyncio.to_thread(process.start)
    assert recorder.states("job-buffered") == []
    recorder.available = True
    await wait_events(recorder, "job-buffered", [S.JOB_STATE_RUNNING, S.JOB_STATE_SUCCEEDED])
    sequences = [e.agent_sequence for e in recorder.events]
    assert sequences == sorted(sequences)


async def test_restarted_agent_readopts_running_jobs_and_reports_vanished_ones_lost(agent) -> None:
    process, recorder = agent
    async with grpc.aio.insecure_channel(process.address) as channel:
        stub = agent_pb2_grpc.NodeAgentServiceStub(channel)
        kept = await stub.RunJob(run_request("job-kept", seconds="3"), timeout=10)
        gone = await stub.RunJob(run_request("job-gone", seconds="30"), timeout=10)
    process.signal(signal.SIGKILL)
    await asyncio.to_thread(process.wait, 10)
    assert psutil.pid_exists(kept.status.pid)  # jobs outlive their agent
    os.killpg(gone.status.pid, signal.SIGKILL)
    await asyncio.to_thread(process.start)
    async with grpc.aio.insecure_channel(process.address) as channel:
        stub = agent_pb2_grpc.NodeAgentServiceStub(channel)
        lost = await wait_state(stub, "job-gone", S.JOB_STATE_LOST)
        assert "gone" in lost.error
        done = await wait_state(stub, "job-kept", S.JOB_STATE_SUCCEEDED, timeout=15)
        assert done.result_json
    await wait_events(recorder, "job-kept", [S.JOB_STATE_RUNNING, S.JOB_STATE_SUCCEEDED])
    await wait_events(recorder, "job-gone", [S.JOB_STATE_RUNNING, S.JOB_STATE_LOST])
