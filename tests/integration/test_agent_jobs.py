"""The agent runs real jobs: idempotent RunJob, results, failures, timeouts, cancel,
logs, strict parameter validation, durable event delivery, and re-adoption after an
agent restart. JobService is a recording stand-in served over real gRPC."""

from __future__ import annotations

import asyncio
import itertools
import json
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
from ringrift_agent.adapters.catalog import DEFAULT_CATALOG
from ringrift_contracts import access
from ringrift_runtime.grpc.server import registration
from ringrift_runtime.grpc.status import field_violations
from ringrift_runtime.local.etcd import EtcdServer
from ringrift_runtime.local.processes import ServiceProcess
from ringrift_runtime.security.identity import Role, service, user
from ringrift_runtime.security.identity import agent as agent_identity
from ringrift_runtime.security.identity import gateway as gateway_identity
from ringrift_runtime.testing.inprocess import serve_in_process
from ringrift_runtime.testing.pki import TestPki
from ringrift_runtime.testing.signals import kill_group
from ringrift_settings import RingriftSettings
from tests.fakes.state import serve_issued_epochs

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


WORKER = agent_identity("worker-1", "test")
JOBS = service("jobs", "test")  # who runs and cancels jobs on agents

CLAIM = (  # writes a game database of `wrote` games and reports `claims` games in result.json (no braces:
    # the catalog formats every argv element)
    "import json, os, sqlite3, sys; data, work, job, wrote, claims = sys.argv[1:6]; "
    "rel = 'games/square8_2p/' + job + '.db'; os.makedirs(data + '/games/square8_2p', exist_ok=True); "
    "db = sqlite3.connect(data + '/' + rel); db.execute('CREATE TABLE games (id INTEGER)'); "
    "db.executemany('INSERT INTO games VALUES (?)', [(i,) for i in range(int(wrote))]); db.commit(); db.close(); "
    "open(work + '/result.json', 'w').write(json.dumps(dict(games=int(claims), path=rel)))"
)
# Burns CPU in a child process it waits for, as a workload's worker processes would.
BURN = (
    "import subprocess, sys; subprocess.run([sys.argv[1], '-c', 'import time, sys; "
    "end = time.process_time() + float(sys.argv[1]); all(iter(lambda: time.process_time() < end, False))', "
    "sys.argv[2]], check=True)"
)
# Numbered lines, slowly enough that the agent checks the log while the job runs (no
# braces: the catalog formats every argv element).
CHATTY = (
    "import sys, time; n = int(sys.argv[1]); "
    "[(print('line %06d ' % i + 'x' * 90, flush=True), time.sleep(0.0005)) for i in range(n)]"
)
# Keeps allocating 20 MB (filled, so resident) every 20 ms, up to 2 GB; spins on the CPU for 30 s.
HOG = "import time; held = []; [(held.append(b'x' * (20 * 2 ** 20)), time.sleep(0.02)) for _ in range(100)]"
SPIN = "import time; end = time.time() + 30; all(iter(lambda: time.time() < end, False))"
CUSTOM_CATALOG = f"""
[templates.copy]
argv = ["{{python}}", "-c", "import sys; print(open(sys.argv[1]).read())", "{{data_dir}}/{{path}}"]
[templates.copy.params.path]
type = "data_path"
required = true

[templates.claim]
argv = ["{{python}}", "-c", "{CLAIM}", "{{data_dir}}", "{{work_dir}}", "{{job_id}}", "{{wrote}}", "{{claims}}"]
[templates.claim.params.wrote]
type = "int"
required = true
[templates.claim.params.claims]
type = "int"
required = true

[templates.missing]
argv = ["/nonexistent/ringrift-program"]

[templates.chatty]
argv = ["{{python}}", "-c", "{CHATTY}", "{{lines}}"]
[templates.chatty.params.lines]
type = "int"
required = true

[templates.burn]
argv = ["{{python}}", "-c", "{BURN}", "{{python}}", "{{seconds}}"]
[templates.burn.params.seconds]
type = "float"
required = true

[templates.hog]
argv = ["{{python}}", "-c", "{HOG}"]
limits = {{ memory_mb = 100 }}

[templates.spin]
argv = ["{{python}}", "-c", "{SPIN}"]
limits = {{ cpu_seconds = 1 }}

[templates.hoard]
argv = ["{{python}}", "-c", "import os; handles = [open(os.devnull) for _ in range(200)]"]
limits = {{ open_files = 32 }}

[templates.whereami]
argv = ["{{python}}", "-c", "import os, sys; print(os.getcwd(), os.environ['RINGRIFT_JOB_ID'], repr(sys.stdin.read()))"]

[templates.short]
argv = ["{{python}}", "-c", "import time; time.sleep(30)"]
timeout_seconds = 1
"""


@pytest.fixture
async def jobs_service(pki: TestPki):
    recorder = RecordingJobService()
    settings = RingriftSettings(
        server={"port": 0}, metrics={"enabled": False}, etcd={"cluster_name": "test"},
        security=pki.security(service("jobs", "test")),
    )  # fmt: skip
    served = [registration("ringrift.jobs.v1.JobService", recorder)]
    async with serve_in_process(served, settings, access=access) as host:
        yield recorder, host.address


@pytest.fixture
async def issued(pki: TestPki):
    """StateService as agents ask it which epochs were issued (up to 100 here)."""
    async with serve_issued_epochs(pki, 100) as served:
        yield served


@pytest.fixture
def agent_env() -> dict[str, str]:
    """More settings of the agent under test (a test parametrizes it)."""
    return {}


@pytest.fixture
async def agent(jobs_service, issued, etcd: EtcdServer, tmp_path: Path, pki: TestPki, agent_env: dict[str, str]):
    recorder, address = jobs_service
    catalog = tmp_path / "extra.toml"
    default = DEFAULT_CATALOG.read_text()
    catalog.write_text(default + CUSTOM_CATALOG)
    process = ServiceProcess(
        "agent",
        tmp_path / "agent",
        env={
            **pki.env(WORKER),
            "RINGRIFT_AGENT__NODE_ID": "worker-1",
            "RINGRIFT_AGENT__DATA_DIR": str(tmp_path / "data"),
            "RINGRIFT_AGENT__TEMPLATES_FILE": str(catalog),
            "RINGRIFT_AGENT__KILL_GRACE_SECONDS": "1",
            "RINGRIFT_ENDPOINTS__JOBS": address,
            "RINGRIFT_ENDPOINTS__STATE": issued[1],
            "RINGRIFT_ETCD__ENDPOINTS": f'["{etcd.endpoint}"]',
            "RINGRIFT_METRICS__ENABLED": "false",
            # Every report is made at once: these tests follow each state an attempt passes.
            "RINGRIFT_AGENT__RUNNING_REPORT_DELAY_SECONDS": "0",
            **agent_env,
        },
    )
    await asyncio.to_thread(process.start)
    try:
        yield process, recorder
    finally:
        await asyncio.to_thread(process.stop)


def run_request(job_id: str, kind: str = "sleep", attempt: int = 1, epoch: int = 5, timeout: int = 0, **params: str):
    return agent_pb2.RunJobRequest(
        job_id=job_id,
        attempt=attempt,
        epoch=epoch,
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


async def wait_events(
    recorder: RecordingJobService, job_id: str, states: list[int], timeout: float = 15, readopted: bool = False
) -> None:
    """Delivery is at least once: an agent killed after JobService acknowledged an event
    but before it deleted it from its outbox sends it again after its restart (JobService
    ignores the repeat). So the states must arrive in this order, repeats aside, and a
    repeat must be the same event (same agent sequence) — except, when ``readopted``, the
    RUNNING report a restarted agent sends for an attempt it re-adopted (JobService's
    answer says whether the job moved on meanwhile)."""
    deadline = time.monotonic() + timeout
    while _distinct(recorder.states(job_id)) != states:
        assert time.monotonic() < deadline, f"events for {job_id}: {recorder.states(job_id)}"
        await asyncio.sleep(0.05)
    events = [e for e in recorder.events if e.job_id == job_id]
    for earlier, later in itertools.pairwise(events):
        if earlier.state == later.state and not (readopted and later.state == S.JOB_STATE_RUNNING):
            assert earlier.agent_sequence == later.agent_sequence, "a state was reported twice as different events"
    if readopted:
        assert [e.state for e in events].count(S.JOB_STATE_RUNNING) >= 2  # the re-adoption asked again


@pytest.fixture
async def stub(agent, pki: TestPki):
    process, _ = agent
    async with pki.channel(process.address, WORKER, JOBS) as channel:
        yield agent_pb2_grpc.NodeAgentServiceStub(channel)


async def test_job_runs_reports_and_streams_logs(agent, stub) -> None:
    _, recorder = agent
    reply = await stub.RunJob(run_request("job-ok", seconds="0.2"), timeout=10)
    assert reply.started and reply.status.state == S.JOB_STATE_RUNNING and reply.status.pid > 0
    status = await wait_state(stub, "job-ok", S.JOB_STATE_SUCCEEDED)
    assert status.result_json == '{"slept_seconds": 0.2}'
    await wait_events(recorder, "job-ok", [S.JOB_STATE_RUNNING, S.JOB_STATE_SUCCEEDED])
    assert recorder.events[-1].result_json == status.result_json and recorder.events[-1].node_id == "worker-1"
    logs = b"".join(
        [c.data async for c in stub.StreamJobLogs(agent_pb2.StreamJobLogsRequest(job_id="job-ok"), timeout=10)]
    )
    assert b"sleeping 0.2s" in logs
    templates = await stub.ListJobTemplates(agent_pb2.ListJobTemplatesRequest(), timeout=5)
    assert {"sleep", "echo", "true", "copy"} <= {t.kind for t in templates.templates}


async def _standby_wrapper_of(agent_pid: int, timeout: float = 10.0) -> psutil.Process:
    """The agent's wrapper waiting for a job, once it runs."""
    deadline = time.monotonic() + timeout
    while True:
        for child in psutil.Process(agent_pid).children():
            try:
                if "--standby" in child.cmdline():
                    return child
            except psutil.NoSuchProcess:
                continue
        assert time.monotonic() < deadline, "no standby wrapper started"
        await asyncio.sleep(0.02)


@pytest.mark.parametrize(
    "agent_env",
    [{}, {"RINGRIFT_AGENT__STANDBY_WRAPPER": "false"}, {"RINGRIFT_AGENT__JOB_WRAPPER": "python"}],
    ids=["standby", "own", "python-standby"],
)
async def test_a_job_runs_in_its_work_directory_with_its_environment_whether_its_wrapper_was_started_ahead(
    agent, stub, agent_env, tmp_path: Path
) -> None:
    """By default the agent keeps a wrapper started ahead (its start is not on the job's
    path), the native one; the job sees the same work directory, environment, logs and
    stdin as with a wrapper started for it, and under wrapper.py."""
    standby = "RINGRIFT_AGENT__STANDBY_WRAPPER" not in agent_env
    process, _ = agent
    for job_id in ("job-where-1", "job-where-2"):
        if standby:  # the agent starts its wrapper in the background (at start, after a job)
            await _standby_wrapper_of(process.process.pid)
            await asyncio.sleep(0.02)  # process start times count in 10 ms ticks
        # The start time of a process started now, on the same clock as the wrapper's
        # (psutil counts from the boot time in whole seconds: time.time() is not comparable).
        marker = await asyncio.create_subprocess_exec("sleep", "30")
        try:
            asked = psutil.Process(marker.pid).create_time()
        finally:
            marker.kill()
            await marker.wait()
        reply = await stub.RunJob(run_request(job_id, "whereami"), timeout=10)
        await wait_state(stub, job_id, S.JOB_STATE_SUCCEEDED)
        logs = b"".join(
            [c.data async for c in stub.StreamJobLogs(agent_pb2.StreamJobLogsRequest(job_id=job_id), timeout=10)]
        )
        work_dir = tmp_path / "data" / "jobs" / job_id / "1"
        assert logs.decode().split() == [str(work_dir), job_id, "''"]
        started = json.loads((work_dir / "state.json").read_text())["pid_created"]  # the wrapper's start
        # Waiting before the job was asked for, or started for it.
        assert started < asked if standby else started >= asked, (started, asked)
        assert json.loads((work_dir / "state.json").read_text())["pid"] == reply.status.pid


@pytest.mark.parametrize("agent_env", [{"RINGRIFT_AGENT__RUNNING_REPORT_DELAY_SECONDS": "0.5"}])
async def test_a_job_that_ends_before_its_running_report_is_due_is_reported_once_by_its_end(agent, stub) -> None:
    """The RUNNING report is made once the job has run for the delay: a job that ends
    sooner is reported once (STARTING -> SUCCEEDED), a longer one twice."""
    _, recorder = agent
    await stub.RunJob(run_request("job-quick", "true"), timeout=10)
    await stub.RunJob(run_request("job-long", seconds="1.5"), timeout=10)
    await wait_events(recorder, "job-quick", [S.JOB_STATE_SUCCEEDED])
    await wait_events(recorder, "job-long", [S.JOB_STATE_RUNNING, S.JOB_STATE_SUCCEEDED])
    assert recorder.states("job-quick") == [S.JOB_STATE_SUCCEEDED]


async def test_a_reported_game_count_must_match_the_games_written(agent, stub) -> None:
    """A job's result is not taken on its word: the games it claims must be in the game
    database it names, or the attempt fails (and no game counter adds them)."""
    _, recorder = agent
    await stub.RunJob(run_request("job-honest", "claim", wrote="7", claims="7"), timeout=10)
    honest = await wait_state(stub, "job-honest", S.JOB_STATE_SUCCEEDED)
    assert '"games": 7' in honest.result_json
    await stub.RunJob(run_request("job-inflated", "claim", wrote="3", claims="10000000"), timeout=10)
    inflated = await wait_state(stub, "job-inflated", S.JOB_STATE_FAILED)
    assert "reported 10000000 games but games/square8_2p/job-inflated.db holds 3" in inflated.error
    await wait_events(recorder, "job-inflated", [S.JOB_STATE_RUNNING, S.JOB_STATE_FAILED])


async def test_an_attempt_reports_the_cpu_seconds_of_its_processes(agent, stub) -> None:
    """The wrapper measures the CPU time of the job and every process it waited for, and
    the agent reports it with the attempt's end (what the cost-aware scheduler weighs)."""
    _, recorder = agent
    await stub.RunJob(run_request("job-burn", "burn", seconds="0.6"), timeout=10)
    await wait_state(stub, "job-burn", S.JOB_STATE_SUCCEEDED)
    await wait_events(recorder, "job-burn", [S.JOB_STATE_RUNNING, S.JOB_STATE_SUCCEEDED])
    ended = [e for e in recorder.events if e.job_id == "job-burn" and e.state == S.JOB_STATE_SUCCEEDED][-1]
    assert 0.6 <= ended.cpu_seconds < 30, ended.cpu_seconds  # the grandchild's 0.6 s are counted
    running = [e for e in recorder.events if e.job_id == "job-burn" and e.state == S.JOB_STATE_RUNNING]
    assert all(e.cpu_seconds == 0 for e in running)  # not known until the job ends


async def test_a_job_past_its_templates_limits_fails_saying_which_and_the_agent_lives_on(agent, stub) -> None:
    """Memory (the process group's resident memory, watched by the agent), CPU seconds and
    open files (rlimits set before the job starts), and a timeout a spec cannot raise."""
    await stub.RunJob(run_request("job-hog", "hog"), timeout=10)  # two at a time: the machine may have 2 slots
    await stub.RunJob(run_request("job-spin", "spin"), timeout=10)
    hog = await wait_state(stub, "job-hog", S.JOB_STATE_FAILED)
    assert hog.error.startswith("memory limit of 100 MB exceeded"), hog.error
    spin = await wait_state(stub, "job-spin", S.JOB_STATE_FAILED)
    assert spin.error == "CPU time limit of 1s exceeded", spin.error
    await stub.RunJob(run_request("job-hoard", "hoard"), timeout=10)
    await stub.RunJob(run_request("job-short", "short", timeout=600), timeout=10)  # asks for more: gets 1 s
    hoard = await wait_state(stub, "job-hoard", S.JOB_STATE_FAILED)
    assert hoard.exit_code == 1
    logs = b"".join(
        [c.data async for c in stub.StreamJobLogs(agent_pb2.StreamJobLogsRequest(job_id="job-hoard"), timeout=10)]
    )
    assert b"Too many open files" in logs
    short = await wait_state(stub, "job-short", S.JOB_STATE_FAILED, timeout=20)
    assert short.error == "timed out after 1s", short.error
    await stub.RunJob(run_request("job-after", seconds="0.1"), timeout=10)  # the agent lives on
    await wait_state(stub, "job-after", S.JOB_STATE_SUCCEEDED)


async def test_the_agent_keeps_to_its_own_job_slots(stub) -> None:
    slots = psutil.cpu_count(logical=True) or 1  # job_slots unset: one per core, as its NodeInfo says
    for index in range(slots):
        await stub.RunJob(run_request(f"job-slot-{index}", seconds="30"), timeout=10)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.RunJob(run_request("job-one-too-many", seconds="30"), timeout=10)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE and "job slots" in caught.value.details()
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.GetJobStatus(agent_pb2.GetJobStatusRequest(job_id="job-one-too-many"), timeout=5)  # never started
    await stub.CancelJob(agent_pb2.CancelJobRequest(job_id="job-slot-0", epoch=5), timeout=15)
    await wait_state(stub, "job-slot-0", S.JOB_STATE_CANCELLED)
    await stub.RunJob(run_request("job-one-too-many", seconds="0.1"), timeout=10)  # a slot is free again
    await wait_state(stub, "job-one-too-many", S.JOB_STATE_SUCCEEDED)


async def test_a_program_that_cannot_start_fails_with_exit_code_127_and_says_why(agent, stub) -> None:
    await stub.RunJob(run_request("job-missing", "missing"), timeout=10)
    status = await wait_state(stub, "job-missing", S.JOB_STATE_FAILED)
    assert status.exit_code == 127 and "exit code 127" in status.error  # failed, not lost
    logs = b"".join(
        [c.data async for c in stub.StreamJobLogs(agent_pb2.StreamJobLogsRequest(job_id="job-missing"), timeout=10)]
    )
    assert b"cannot start /nonexistent/ringrift-program" in logs


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
    # The agent's own files are never a job's: fence, outbox, job state.
    (run_request("j1", kind="copy", path="agent/outbox/zzzz.json"), "spec.params[path]"),
    (run_request("j1", kind="copy", path="agent/fence.json"), "spec.params[path]"),
    (run_request("j1", kind="copy", path="jobs/x/1/state.json"), "spec.params[path]"),
    (run_request("j1", kind="copy", path="."), "spec.params[path]"),
    # A value that starts with '-' would be an option of the job's program.
    (run_request("j1", kind="echo", message="--help"), "spec.params[message]"),
    (run_request("j1", kind="copy", path="-rf"), "spec.params[path]"),
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


async def test_a_symlink_in_the_data_directory_does_not_lead_a_job_out_of_its_subtree(
    agent, stub, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    (data / "games").mkdir(parents=True, exist_ok=True)
    (data / "games" / "escape").symlink_to(data / "agent")  # games/escape -> the agent's own files
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.RunJob(run_request("j-link", kind="copy", path="games/escape/fence.json"), timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "spec.params[path]" in field_violations(caught.value)
    assert not (await stub.ListJobs(agent_pb2.ListJobsRequest(), timeout=5)).jobs
    (data / "games" / "real.txt").write_text("fine")
    await stub.RunJob(run_request("j-ok", kind="copy", path="games/real.txt"), timeout=10)
    assert (await wait_state(stub, "j-ok", S.JOB_STATE_SUCCEEDED)).exit_code == 0


async def test_a_forged_epoch_from_any_caller_changes_nothing(agent, stub, issued, pki: TestPki, tmp_path) -> None:
    """The first build's attack: CancelJob(unknown job, epoch 2**64-1) with no credentials
    stored the epoch and fenced out every later leader. Now a plaintext caller cannot
    connect, no identity but JobService may call, and JobService's own call with an epoch
    StateService never issued is refused and not remembered."""
    process, _ = agent
    # 2**62: an epoch that fits what is stored but was never issued (2**64 - 1 no longer
    # gets that far: every service refuses an integer past 2**63 - 1 as INVALID_ARGUMENT).
    forged = agent_pb2.CancelJobRequest(job_id="no-such-job", epoch=2**62)
    async with grpc.aio.insecure_channel(process.address) as plaintext:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await agent_pb2_grpc.NodeAgentServiceStub(plaintext).CancelJob(forged, timeout=5)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    for caller in (
        agent_identity("other-node", "test"),
        service("state", "test"),
        service("training", "test"),
        gateway_identity("gw-1", "test"),
        user("admin", Role.ADMIN, "test"),
    ):
        async with pki.channel(process.address, WORKER, caller) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await agent_pb2_grpc.NodeAgentServiceStub(channel).CancelJob(forged, timeout=5)
            assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED, caller
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CancelJob(forged, timeout=5)  # JobService itself, with an epoch never issued
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "never issued" in caught.value.details()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CancelJob(agent_pb2.CancelJobRequest(job_id="no-such-job", epoch=2**64 - 1), timeout=5)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "epoch" in field_violations(caught.value)
    info = await stub.GetNodeInfo(agent_pb2.GetNodeInfoRequest(), timeout=5)
    assert info.max_epoch_seen < 2**62
    await stub.RunJob(run_request("after-forgery", epoch=issued[0].epoch), timeout=10)  # the leader still runs jobs
    assert (await wait_state(stub, "after-forgery", S.JOB_STATE_SUCCEEDED)).exit_code == 0


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
    # Its RUNNING report waited behind its end and is dropped: the end says more.
    await wait_events(recorder, "job-buffered", [S.JOB_STATE_SUCCEEDED])
    sequences = [e.agent_sequence for e in recorder.events]
    assert sequences == sorted(sequences)


async def run_then_kill_the_agent(process: ServiceProcess, pki: TestPki, *requests) -> list:
    """RunJob each request on the agent, then SIGKILL the agent (its jobs run on): the
    replies."""
    async with pki.channel(process.address, WORKER, JOBS) as channel:
        stub = agent_pb2_grpc.NodeAgentServiceStub(channel)
        replies = [await stub.RunJob(request, timeout=10) for request in requests]
    process.signal(signal.SIGKILL)
    await asyncio.to_thread(process.wait, 10)
    return replies


async def test_restarted_agent_readopts_running_jobs_and_reports_vanished_ones_lost(
    agent, tmp_path: Path, pki: TestPki
) -> None:
    process, recorder = agent
    kept, gone = await run_then_kill_the_agent(
        process, pki, run_request("job-kept", seconds="3"), run_request("job-gone", seconds="30")
    )
    assert psutil.pid_exists(kept.status.pid)  # jobs outlive their agent
    assert kill_group(gone.status.pid, str(tmp_path / "data"))  # its work dir is in the agent's data dir
    await asyncio.to_thread(process.start)
    async with pki.channel(process.address, WORKER, JOBS) as channel:
        stub = agent_pb2_grpc.NodeAgentServiceStub(channel)
        lost = await wait_state(stub, "job-gone", S.JOB_STATE_LOST)
        assert "gone" in lost.error
        done = await wait_state(stub, "job-kept", S.JOB_STATE_SUCCEEDED, timeout=15)
        assert done.result_json
    await wait_events(recorder, "job-kept", [S.JOB_STATE_RUNNING, S.JOB_STATE_SUCCEEDED], readopted=True)
    # Its RUNNING report may not have left before the kill: then it waited behind LOST and
    # was dropped (the end says more).
    ran = [S.JOB_STATE_RUNNING] if S.JOB_STATE_RUNNING in recorder.states("job-gone") else []
    await wait_events(recorder, "job-gone", [*ran, S.JOB_STATE_LOST])


@pytest.mark.parametrize("agent_env", [{"RINGRIFT_AGENT__JOB_SLOTS": "2"}])
async def test_attempts_readopted_after_a_restart_take_their_job_slots(agent, pki: TestPki) -> None:
    process, _ = agent
    await run_then_kill_the_agent(
        process, pki, run_request("job-slot-a", seconds="30"), run_request("job-slot-b", seconds="30")
    )
    await asyncio.to_thread(process.start)
    async with pki.channel(process.address, WORKER, JOBS) as channel:
        stub = agent_pb2_grpc.NodeAgentServiceStub(channel)
        await wait_state(stub, "job-slot-a", S.JOB_STATE_RUNNING)  # re-adopted
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.RunJob(run_request("job-slot-c", seconds="30"), timeout=10)
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE and "job slots" in caught.value.details()
        await stub.CancelJob(agent_pb2.CancelJobRequest(job_id="job-slot-a", epoch=5), timeout=15)
        await wait_state(stub, "job-slot-a", S.JOB_STATE_CANCELLED)
        await stub.RunJob(run_request("job-slot-c", seconds="0.1"), timeout=10)  # a slot is free again
        await wait_state(stub, "job-slot-c", S.JOB_STATE_SUCCEEDED)
        await stub.CancelJob(agent_pb2.CancelJobRequest(job_id="job-slot-b", epoch=5), timeout=15)


async def test_an_attempt_whose_agent_died_before_recording_it_is_stopped_at_restart(
    agent, tmp_path: Path, pki: TestPki
) -> None:
    """An agent that dies between starting a job's process and writing its state.json never
    answered RunJob, so JobService runs the job again: the restarted agent stops the orphan
    (found by its wrapper's working directory) instead of leaving it running unwatched, and
    leaves a recorded attempt's job alone."""
    process, _ = agent
    orphan, kept = await run_then_kill_the_agent(
        process, pki, run_request("job-orphan", seconds="60"), run_request("job-kept", seconds="60")
    )
    (tmp_path / "data" / "jobs" / "job-orphan" / "1" / "state.json").unlink()  # as if it died before the write
    orphan_job = psutil.Process(orphan.status.pid)
    assert orphan_job.is_running()
    await asyncio.to_thread(process.start)
    try:
        await asyncio.to_thread(orphan_job.wait, 15)
    except psutil.TimeoutExpired:
        pytest.fail("the unrecorded attempt's process was left running")
    async with pki.channel(process.address, WORKER, JOBS) as channel:
        stub = agent_pb2_grpc.NodeAgentServiceStub(channel)
        assert (await wait_state(stub, "job-kept", S.JOB_STATE_RUNNING)).pid == kept.status.pid
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await stub.GetJobStatus(agent_pb2.GetJobStatusRequest(job_id="job-orphan"), timeout=5)
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    assert psutil.pid_exists(kept.status.pid)
    kill_group(kept.status.pid, str(tmp_path / "data"))


@pytest.mark.parametrize(
    "agent_env",
    [{"RINGRIFT_AGENT__WORK_DIR_RETENTION_HOURS": "0.0005", "RINGRIFT_AGENT__WORK_DIR_PRUNE_SECONDS": "0.3"}],
)
async def test_work_directories_of_ended_attempts_are_deleted_after_the_retention_window(
    agent, stub, tmp_path: Path
) -> None:
    """Retention (1.8 s here, 72 h by default): an ended attempt's work directory and its
    record go after the window; a running attempt's stay, whatever its age."""
    _, recorder = agent
    await stub.RunJob(run_request("job-old", seconds="0"), timeout=10)
    await wait_state(stub, "job-old", S.JOB_STATE_SUCCEEDED)
    await stub.RunJob(run_request("job-long", seconds="30"), timeout=10)
    await wait_state(stub, "job-long", S.JOB_STATE_RUNNING)
    jobs = tmp_path / "data" / "jobs"
    assert (jobs / "job-old" / "1").is_dir()
    deadline = time.monotonic() + 15
    while (jobs / "job-old").exists():
        assert time.monotonic() < deadline, "the ended attempt's work directory was never deleted"
        await asyncio.sleep(0.1)
    with pytest.raises(grpc.aio.AioRpcError) as gone:
        await stub.GetJobStatus(agent_pb2.GetJobStatusRequest(job_id="job-old"), timeout=5)
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND
    await asyncio.sleep(2.5)  # past the window: a live attempt is never pruned
    assert (jobs / "job-long" / "1").is_dir()
    assert (await wait_state(stub, "job-long", S.JOB_STATE_RUNNING)).pid > 0
    await wait_events(recorder, "job-old", [S.JOB_STATE_RUNNING, S.JOB_STATE_SUCCEEDED])  # reported before it went


@pytest.fixture
def leftovers(tmp_path: Path) -> Path:
    """Attempt directories an earlier agent left without a readable state.json, before
    the agent starts: one it created and died before writing its state, one whose record
    was cut short (both an hour old), and one just left."""
    jobs = tmp_path / "data" / "jobs"
    hour_ago = time.time() - 3600
    for job_id, record in (("job-bare", None), ("job-cut", '{"job_id": "job-cut", "attem')):
        attempt_dir = jobs / job_id / "1"
        attempt_dir.mkdir(parents=True)
        (attempt_dir / "stdout.log").write_text("started\n")
        if record is not None:
            (attempt_dir / "state.json").write_text(record)
        for path in (*attempt_dir.iterdir(), attempt_dir):
            os.utime(path, (hour_ago, hour_ago))
    young = jobs / "job-young" / "1"
    young.mkdir(parents=True)
    (young / "stdout.log").write_text("started\n")
    return jobs


@pytest.mark.parametrize(
    "agent_env",
    [{"RINGRIFT_AGENT__WORK_DIR_RETENTION_HOURS": "0.01", "RINGRIFT_AGENT__WORK_DIR_PRUNE_SECONDS": "0.3"}],
)
async def test_attempt_directories_without_a_readable_record_are_deleted_after_the_retention_window(
    leftovers: Path, agent, stub
) -> None:
    """Retention (36 s here) counts an attempt directory without a readable state.json
    from its newest file: the hour-old ones go, the young one stays within its window, and
    the agent runs jobs as before."""
    deadline = time.monotonic() + 15
    while (leftovers / "job-bare").exists() or (leftovers / "job-cut").exists():
        assert time.monotonic() < deadline, sorted(os.listdir(leftovers))
        await asyncio.sleep(0.1)
    assert (leftovers / "job-young" / "1" / "stdout.log").is_file()
    await stub.RunJob(run_request("job-new", seconds="0"), timeout=10)
    await wait_state(stub, "job-new", S.JOB_STATE_SUCCEEDED)
    assert sorted(os.listdir(leftovers)) == ["job-new", "job-young"]


@pytest.mark.parametrize(
    "agent_env", [{"RINGRIFT_AGENT__JOB_LOG_MAX_BYTES": "20000", "RINGRIFT_AGENT__JOB_LOG_CHECK_SECONDS": "0.1"}]
)
async def test_a_job_log_is_capped_with_its_newest_lines_kept(agent, stub, tmp_path: Path) -> None:
    """A job that writes ~1 MB into a 20 kB cap: while it runs and when it ends, its log
    stays near the cap, says how much was dropped, and ends with the job's last line."""
    await stub.RunJob(run_request("chatty", kind="chatty", lines="10000"), timeout=10)
    await wait_state(stub, "chatty", S.JOB_STATE_SUCCEEDED, timeout=60)
    log = (tmp_path / "data" / "jobs" / "chatty" / "1" / "stdout.log").read_bytes()
    assert len(log) <= 20000, len(log)
    assert log.startswith(b"[ringrift: ") and b"earlier bytes of this log were dropped]" in log.splitlines()[0]
    assert log.rstrip().endswith(b"line 009999 " + b"x" * 90)
    streamed = b"".join(
        [c.data async for c in stub.StreamJobLogs(agent_pb2.StreamJobLogsRequest(job_id="chatty"), timeout=10)]
    )
    assert streamed == log


@pytest.mark.parametrize("agent_env", [{"RINGRIFT_AGENT__ENDED_ATTEMPTS_IN_MEMORY": "1"}])
async def test_an_ended_attempt_let_go_from_memory_is_read_from_disk_and_never_runs_again(agent, stub) -> None:
    """The agent holds the live attempts and the most recent ended ones (one here): an
    older ended attempt still answers its status and logs (from its state.json), and a
    repeated RunJob of it starts nothing, as when it was held."""
    _, recorder = agent
    await stub.RunJob(run_request("job-first", seconds="0"), timeout=10)
    done = await wait_state(stub, "job-first", S.JOB_STATE_SUCCEEDED)
    for job_id in ("job-second", "job-third"):
        await stub.RunJob(run_request(job_id, seconds="0"), timeout=10)
        await wait_state(stub, job_id, S.JOB_STATE_SUCCEEDED)

    # What it holds: the newest ended one. An attempt reads SUCCEEDED a moment before its
    # end is recorded on disk and the one before it is let go from memory.
    deadline = time.monotonic() + 10
    while True:
        held = [j.job_id for j in (await stub.ListJobs(agent_pb2.ListJobsRequest(), timeout=5)).jobs]
        if held == ["job-third"] or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert held == ["job-third"]
    for ask in (0, 1):  # the latest attempt, and attempt 1 by number
        status = (await stub.GetJobStatus(agent_pb2.GetJobStatusRequest(job_id="job-first", attempt=ask))).status
        assert status == done  # the same status as when it was held (state, times, result)
    logs = b"".join(
        [c.data async for c in stub.StreamJobLogs(agent_pb2.StreamJobLogsRequest(job_id="job-first"), timeout=10)]
    )
    assert b"sleeping 0s" in logs or b"sleeping 0.0s" in logs, logs
    again = await stub.RunJob(run_request("job-first", seconds="0"), timeout=10)
    assert not again.started and again.status == done
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await stub.GetJobStatus(agent_pb2.GetJobStatusRequest(job_id="job-first", attempt=2), timeout=5)
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    await wait_events(recorder, "job-first", [S.JOB_STATE_RUNNING, S.JOB_STATE_SUCCEEDED])  # reported once


@pytest.mark.parametrize("agent_env", [{"RINGRIFT_AGENT__WORK_DIR_MAX_ENDED": "2"}])
async def test_past_the_count_cap_the_oldest_ended_work_directories_go_at_once(agent, stub, tmp_path: Path) -> None:
    """Retention by count (two here, 10,000 by default) beside the time window: a flood
    of short jobs keeps the newest, and a running attempt stays whatever the count."""
    await stub.RunJob(run_request("job-long", seconds="30"), timeout=10)
    for index in range(4):
        await stub.RunJob(run_request(f"job-{index}", seconds="0"), timeout=10)
        await wait_state(stub, f"job-{index}", S.JOB_STATE_SUCCEEDED)
    jobs = tmp_path / "data" / "jobs"
    deadline = time.monotonic() + 15
    while (jobs / "job-0").exists() or (jobs / "job-1").exists():
        assert time.monotonic() < deadline, sorted(p.name for p in jobs.iterdir())
        await asyncio.sleep(0.05)
    assert sorted(p.name for p in jobs.iterdir()) == ["job-2", "job-3", "job-long"]
    with pytest.raises(grpc.aio.AioRpcError) as gone:
        await stub.GetJobStatus(agent_pb2.GetJobStatusRequest(job_id="job-0"), timeout=5)
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND
    assert (await wait_state(stub, "job-long", S.JOB_STATE_RUNNING)).pid > 0
