"""The gateway facade with real processes: two replicas, the loops on the leader only and
taken over by the other replica when the leader is killed (a pause survives the change),
twenty concurrent status requests computed once, the dashboard in headless Chromium
(live nodes, a rating chart, no console errors), and the CLI's one-line errors."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import pytest

from ringrift.common.v1 import common_pb2
from ringrift.common.v1 import common_pb2 as C
from ringrift.orchestrator.v1 import orchestrator_pb2 as O
from ringrift.state.v1 import state_pb2, state_pb2_grpc
from ringrift_client import FailedPrecondition, InvalidArgument, RingriftError
from ringrift_runtime.security.identity import Role, service, user
from ringrift_runtime.security.tokens import TokenStore
from ringrift_runtime.testing.pki import TestPki
from tests.callers import gateway_client
from tests.integration.cluster.conftest import ELECTION_TTL, LocalCluster

HEALTHY, PAUSED = O.LOOP_HEALTH_HEALTHY, O.LOOP_HEALTH_PAUSED
RINGRIFT = str(Path(sys.executable).parent / "ringrift")


async def _facade(pki: TestPki, address: str, method: str, request, timeout: float = 5):
    """One facade call through ringrift_client (``method`` as the proto names it)."""
    name = re.sub(r"(?<=[a-z])([A-Z])", r"_\1", method).lower()
    async with gateway_client(pki, address) as client:
        return await getattr(client, name)(request, timeout=timeout)


async def _loops(pki: TestPki, address: str) -> dict[str, O.LoopStatus]:
    reply = await _facade(pki, address, "ListLoops", O.ListLoopsRequest())
    return {loop.name: loop for loop in reply.loops}


async def _wait_loops(pki: TestPki, address: str, check, timeout: float) -> dict[str, O.LoopStatus]:
    deadline = time.monotonic() + timeout
    loops = {}
    while time.monotonic() < deadline:
        loops = await _loops(pki, address)
        if check(loops):
            return loops
        await asyncio.sleep(0.1)
    raise AssertionError(f"loops never reached the expected state: {loops}")


async def _gateways(cluster: LocalCluster) -> tuple[str, str]:
    await cluster.start_state()
    await cluster.start_gateway("gw-a")
    await cluster.start_gateway("gw-b")
    first = await cluster.wait_for_leader()
    return first.leader_id, ("gw-b" if first.leader_id == "gw-a" else "gw-a")


async def test_the_other_replica_takes_over_the_loops_and_keeps_a_pause(cluster: LocalCluster) -> None:
    leader, other = await _gateways(cluster)
    leader_address, other_address = cluster.processes[leader].address, cluster.processes[other].address
    running = await _wait_loops(
        cluster.pki, leader_address, lambda l: l and all(x.health == HEALTHY and x.runs > 0 for x in l.values()), 10
    )
    assert set(running) == {"JobReaper", "JobDispatcher", "JobCleanup"}  # the pipeline loops are off here
    # The other replica answers from the leader's heartbeat; a pause taken there reaches the leader.
    await _wait_loops(cluster.pki, other_address, lambda l: l["JobDispatcher"].runs > 0, 5)
    paused = await _facade(cluster.pki, other_address, "PauseLoop", O.PauseLoopRequest(name="JobReaper"))
    assert paused.loop.health == PAUSED
    await _wait_loops(cluster.pki, leader_address, lambda l: l["JobReaper"].health == PAUSED, 3)

    before = (await cluster.epoch()).epoch
    killed_at = time.monotonic()
    cluster.processes[leader].signal(signal.SIGKILL)
    await cluster.wait_for_leader(timeout=ELECTION_TTL + 5, above=before)
    taken = await _wait_loops(
        cluster.pki,
        other_address,
        lambda l: l["JobDispatcher"].health == HEALTHY and l["JobDispatcher"].runs > 0,
        ELECTION_TTL + 5,
    )
    took_over = time.monotonic() - killed_at
    assert took_over <= ELECTION_TTL + 2, f"the loops restarted {took_over:.1f} s after the kill"
    assert taken["JobReaper"].health == PAUSED  # the pause is stored, not a property of the old leader
    resumed = await _facade(cluster.pki, other_address, "ResumeLoop", O.ResumeLoopRequest(name="JobReaper"))
    assert resumed.loop.name == "JobReaper"
    await _wait_loops(
        cluster.pki, other_address, lambda l: l["JobReaper"].health == HEALTHY and l["JobReaper"].runs > 0, 5
    )
    with pytest.raises(InvalidArgument) as refused:
        await _facade(cluster.pki, other_address, "PauseLoop", O.PauseLoopRequest(name="NoSuchLoop"))
    assert refused.value.fields == ["name"] and "JobReaper" in refused.value.message


def _metric(port: int, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    match = re.search(rf"^{name} (\S+)$", text, re.M)
    assert match, f"{name} not exported"
    return float(match.group(1))


async def test_twenty_concurrent_status_requests_cost_one_computation(cluster: LocalCluster) -> None:
    leader, _ = await _gateways(cluster)
    await cluster.start_agent("node-1")
    gateway = cluster.processes[leader]
    await asyncio.sleep(1.5)  # past the cache's second
    before = _metric(gateway.metrics_port, "ringrift_gateway_status_computations")
    replies = await asyncio.gather(
        *(_facade(cluster.pki, gateway.address, "GetClusterStatus", O.GetClusterStatusRequest()) for _ in range(20))
    )
    after = _metric(gateway.metrics_port, "ringrift_gateway_status_computations")
    assert after - before == 1
    assert len({r.computed_at.ToNanoseconds() for r in replies}) == 1
    status = replies[0]
    assert status.leader_id == leader and status.epoch > 0
    assert {l.name for l in status.loops} == {"JobReaper", "JobDispatcher", "JobCleanup"}
    assert [n.node_id for n in status.nodes] == ["node-1"]


async def _store_ratings(cluster: LocalCluster) -> None:
    """Two fits of one config, as the TrainingCoordinator would store them."""
    epoch = (await cluster.epoch()).epoch
    async with cluster.channel("state", service("training", "test")) as channel:
        stub = state_pb2_grpc.StateServiceStub(channel)
        for elo in (1150.0, 1320.0):
            await stub.PutRatings(
                state_pb2.PutRatingsRequest(
                    config_key="square8_2p",
                    epoch=epoch,
                    ratings=[
                        common_pb2.Rating(config_key="square8_2p", player="random", elo=1000, games=100),
                        common_pb2.Rating(config_key="square8_2p", player="square8_2p.g1", elo=elo, games=100),
                    ],
                ),
                timeout=5,
            )
            await asyncio.sleep(1.1)


async def test_the_dashboard_shows_live_nodes_and_a_rating_chart_without_console_errors(
    cluster: LocalCluster, tmp_path
) -> None:
    if shutil.which("chromium") is None:
        if os.environ.get("CI"):
            pytest.fail("Debian's chromium is missing; scripts/test.sh installs it (bootstrap.sh --tests)")
        pytest.skip("Debian's chromium is not installed: run ./scripts/test.sh, which installs it")
    leader, _ = await _gateways(cluster)
    await cluster.start_agent("node-1")
    await cluster.start_agent("node-2")
    await _store_ratings(cluster)
    port = cluster.processes[leader].metrics_port
    token = TokenStore(cluster.tokens_file).add(user("watcher", Role.VIEWER, "test"), 3600)
    await asyncio.sleep(1.0)
    url = f"http://127.0.0.1:{port}/api/status"
    status = json.loads(await asyncio.to_thread(_get, url, {"Authorization": f"Bearer {token}"}))
    assert [n["node_id"] for n in status["nodes"]] == ["node-1", "node-2"]
    command = [
        "chromium",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'chromium'}",
        "--virtual-time-budget=8000",
        "--enable-logging=stderr",
        "--v=0",
        "--dump-dom",
        f"http://127.0.0.1:{port}/?token={token}",  # signs the browser in (a cookie), as `ringrift up` prints it
    ]
    result = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout
    assert 'data-loaded="true"' in dom, "the page never rendered the gateway's data"
    assert "<td>node-1</td>" in dom and "<td>node-2</td>" in dom
    chart = re.search(r'<polyline[^>]*data-config="square8_2p"', dom)
    assert chart, "no rating line for square8_2p"
    points = re.search(r'points="([^"]+)"', chart.group(0)).group(1).split()
    assert len(points) >= 2  # one point per fit
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], f"console messages: {console}"


async def test_every_mutating_user_call_is_an_audit_event_with_the_callers_identity(cluster: LocalCluster) -> None:
    await cluster.start_state()
    await cluster.start("nodes", "nodes")
    await cluster.start("jobs", "jobs")
    await cluster.start_gateway("gw-a")
    await cluster.wait_for_leader()
    address = cluster.processes["gw-a"].address
    operator, viewer = user("olga", Role.OPERATOR, "test"), user("vic", Role.VIEWER, "test")

    async def as_(identity, method: str, request) -> str:
        name = re.sub(r"(?<=[a-z])([A-Z])", r"_\1", method).lower()
        async with gateway_client(cluster.pki, address, identity) as client:
            try:
                await getattr(client, name)(request, timeout=10)
            except RingriftError as exc:
                return exc.code.name
        return "OK"

    echo = C.JobSpec(kind="echo", params={"message": "audited"})
    assert await as_(operator, "SubmitJob", O.SubmitJobRequest(spec=echo, idempotency_key="audit-1")) == "OK"
    assert await as_(viewer, "SubmitJob", O.SubmitJobRequest(spec=echo)) == "PERMISSION_DENIED"
    assert await as_(operator, "PauseLoop", O.PauseLoopRequest(name="JobReaper")) == "OK"
    assert await as_(operator, "PauseLoop", O.PauseLoopRequest(name="NoSuchLoop")) == "INVALID_ARGUMENT"
    assert await as_(viewer, "ListJobs", O.ListJobsRequest()) == "OK"  # a read: not audited
    audit = [
        (e.subject, e.attributes["method"].rsplit("/", 1)[1], e.attributes["code"])
        for e in await cluster.events([C.EVENT_TYPE_AUDIT])
    ]
    assert audit == [
        ("user:operator:olga", "SubmitJob", "OK"),
        ("user:viewer:vic", "SubmitJob", "PERMISSION_DENIED"),
        ("user:operator:olga", "PauseLoop", "OK"),
        ("user:operator:olga", "PauseLoop", "INVALID_ARGUMENT"),
    ]
    first = (await cluster.events([C.EVENT_TYPE_AUDIT]))[0]
    assert 'kind: "echo"' in first.attributes["request"] and len(first.attributes["request"]) <= 300
    listed = await asyncio.to_thread(_cli, cluster.pki, "events", "--type", "audit", "--gateway", address, "--json")
    assert listed.returncode == 0, listed.stderr
    assert [json.loads(line)["subject"] for line in listed.stdout.splitlines()] == [a[0] for a in audit]


def _get(url: str, headers: dict[str, str] | None = None) -> bytes:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=5) as reply:
        return reply.read()


def _status_of(url: str, headers: dict[str, str] | None = None) -> int:
    try:
        _get(url, headers)
    except urllib.error.HTTPError as exc:
        return exc.code
    return 200


async def test_the_dashboard_needs_a_viewer_token_and_a_known_host_and_metrics_stay_open(
    cluster: LocalCluster,
) -> None:
    leader, _ = await _gateways(cluster)
    port = cluster.processes[leader].metrics_port
    store = TokenStore(cluster.tokens_file)
    viewer = store.add(user("watcher", Role.VIEWER, "test"), 3600)
    other_cluster = store.add(user("watcher", Role.ADMIN, "elsewhere"), 3600)
    base = f"http://127.0.0.1:{port}"

    def statuses() -> dict[str, int]:
        bearer = {"Authorization": f"Bearer {viewer}"}
        return {
            "no credential": _status_of(f"{base}/api/status"),
            "page without credential": _status_of(f"{base}/"),
            "bad token": _status_of(f"{base}/api/status", {"Authorization": "Bearer rrt.0.nope"}),
            "another cluster's token": _status_of(f"{base}/api/status", {"Authorization": f"Bearer {other_cluster}"}),
            "viewer": _status_of(f"{base}/api/status", bearer),
            "viewer, cookie": _status_of(f"{base}/api/ratings", {"Cookie": f"ringrift_dashboard={viewer}"}),
            "viewer, rebinding host": _status_of(f"{base}/api/status", {**bearer, "Host": "attacker.example:80"}),
            "metrics": _status_of(f"{base}/metrics"),
            "healthz": _status_of(f"{base}/healthz"),
        }

    assert await asyncio.to_thread(statuses) == {
        "no credential": 401,
        "page without credential": 401,
        "bad token": 401,
        "another cluster's token": 401,
        "viewer": 200,
        "viewer, cookie": 200,
        "viewer, rebinding host": 421,
        "metrics": 200,
        "healthz": 200,
    }

    def sign_in() -> tuple[int, str, str]:
        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args, **kwargs):
                return None

        opener = urllib.request.build_opener(NoRedirect)
        try:
            opener.open(f"{base}/?token={viewer}", timeout=5)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers.get("Location", ""), exc.headers.get("Set-Cookie", "")
        return 200, "", ""

    code, location, cookie = await asyncio.to_thread(sign_in)
    assert (code, location) == (303, "/") and "HttpOnly" in cookie and "SameSite=Strict" in cookie


def _cli(pki: TestPki, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """The command line as an operator, its certificate named by RINGRIFT_CLI_* variables."""
    files = pki.files(user("test-operator", Role.OPERATOR, "test"))
    return subprocess.run(
        [RINGRIFT, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={
            "COLUMNS": "200",
            "PATH": "/usr/bin:/bin",
            "RINGRIFT_CLI_CA": str(files.ca),
            "RINGRIFT_CLI_CERT": str(files.cert),
            "RINGRIFT_CLI_KEY": str(files.key),
        },
    )


async def test_cli_bad_input_gives_one_clear_line_and_a_non_zero_exit(cluster: LocalCluster) -> None:
    await cluster.start_state()
    await cluster.start("nodes", "nodes")
    await cluster.start("jobs", "jobs")
    await cluster.start_gateway("gw-a")
    await cluster.wait_for_leader()
    await cluster.start_agent("node-1")
    gateway = cluster.processes["gw-a"].address
    cases = {
        "unknown kind": (["submit", "no-such-kind", "--gateway", gateway], "spec.kind"),
        "bad config key": (["submit", "selfplay", "--config", "square8_9p", "--gateway", gateway], "spec.config_key"),
        "bad parameter": (["submit", "selfplay", "--param", "games", "--gateway", gateway], "key=value"),
        "unknown loop": (["loops", "pause", "Nope", "--gateway", gateway], "JobReaper"),
        "unknown state": (["jobs", "--state", "sleeping", "--gateway", gateway], "pending"),
        "gateway down": (["status", "--gateway", "127.0.0.1:9", "--timeout", "3"], "ringrift up"),
    }
    for name, (args, hint) in cases.items():
        result = await asyncio.to_thread(_cli, cluster.pki, *args)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.returncode != 0, name
        assert len(lines) == 1 and hint in lines[0], (name, result.stderr)
        assert "Traceback" not in result.stderr + result.stdout, name
    ok = await asyncio.to_thread(_cli, cluster.pki, "status", "--gateway", gateway, "--json")
    assert ok.returncode == 0, ok.stderr
    status = json.loads(ok.stdout)
    assert status["leaderId"] == "gw-a" and [n["nodeId"] for n in status["nodes"]] == ["node-1"]
    text = await asyncio.to_thread(_cli, cluster.pki, "status", "--gateway", gateway)
    assert "leader gw-a" in text.stdout and "JobDispatcher" in text.stdout and "node-1" in text.stdout


async def _node_ids(pki: TestPki, address: str) -> list[str]:
    reply = await _facade(pki, address, "ListNodes", O.ListNodesRequest(include_unschedulable=True))
    return [n.node_id for n in reply.nodes]


async def test_the_local_provider_starts_real_agents_and_removes_them(cluster: LocalCluster, tmp_path) -> None:
    from ringrift_gateway.adapters.scaling import LocalProcessProvider
    from ringrift_runtime.local.processes import LOCAL_AGENT_PID_FILE, signal_pid_files
    from ringrift_runtime.security.identity import gateway as gateway_identity
    from ringrift_settings import RingriftSettings

    await cluster.start_state()
    gateway = (await cluster.start_gateway("gw-a")).address
    settings = RingriftSettings(
        etcd={"endpoints": [cluster.etcd.endpoint], "cluster_name": "test"},
        security={**cluster.pki.security(gateway_identity("gw-a", "test")), "ca_key_file": cluster.pki.ca_key_file},
    )
    provider = LocalProcessProvider(settings, tmp_path / "autoscale")
    try:
        assert await provider.add(2) == ["auto-1", "auto-2"]
        deadline = time.monotonic() + 10
        while await _node_ids(cluster.pki, gateway) != ["auto-1", "auto-2"] and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert await _node_ids(cluster.pki, gateway) == ["auto-1", "auto-2"]
        assert provider.manages("auto-1") and not provider.manages("node-1")
        await provider.remove("auto-1")
        while await _node_ids(cluster.pki, gateway) != ["auto-2"] and time.monotonic() < deadline + 10:
            await asyncio.sleep(0.1)
        assert await _node_ids(cluster.pki, gateway) == ["auto-2"] and not provider.manages("auto-1")
        assert await provider.add(1) == ["auto-3"]  # a removed node's folder stays; ids are not reused
    finally:
        await asyncio.to_thread(signal_pid_files, tmp_path / "autoscale", f"*/{LOCAL_AGENT_PID_FILE}")
    while await _node_ids(cluster.pki, gateway) and time.monotonic() < deadline + 20:
        await asyncio.sleep(0.1)
    assert await _node_ids(cluster.pki, gateway) == []


async def test_rollback_with_bad_input_names_the_field_changes_nothing_and_echoes_only_a_prefix(
    cluster: LocalCluster,
) -> None:
    """RollbackModel, on the facade (operators) and on TrainingCoordinator (the gateway):
    a malformed or unknown config, model id or reason, or a missing epoch, is refused as
    INVALID_ARGUMENT naming the field; a well-formed request for a config without a best
    model is FAILED_PRECONDITION; nothing in the registry changes."""
    from ringrift.training.v1 import training_pb2 as T
    from ringrift.training.v1 import training_pb2_grpc
    from ringrift_runtime.grpc.status import field_violations

    await cluster.start_state()
    await cluster.start("training", "training")
    await cluster.start_gateway("gw-a")
    epoch = (await cluster.wait_for_leader()).epoch
    address = cluster.processes["gw-a"].address
    long_value = "x" * 5000
    facade_cases = [
        (O.RollbackModelRequest(config_key="square8_9p"), "config_key"),
        (O.RollbackModelRequest(config_key="square10_2p"), "config_key"),  # well formed, not trained here
        (O.RollbackModelRequest(config_key="square8_2p", to_model_id="../" + long_value), "to_model_id"),
        (O.RollbackModelRequest(config_key="square8_2p", reason=long_value), "reason"),
    ]
    training = training_pb2_grpc.TrainingCoordinatorServiceStub(cluster.channel("training"))
    training_cases = [
        (T.RollbackModelRequest(config_key="square8_2p"), "epoch"),
        (T.RollbackModelRequest(config_key="nope", epoch=epoch), "config_key"),
        (T.RollbackModelRequest(config_key="square8_2p", to_model_id=long_value, epoch=epoch), "to_model_id"),
    ]
    for request, field in facade_cases:
        with pytest.raises(InvalidArgument) as named:
            await _facade(cluster.pki, address, "RollbackModel", request, timeout=10)
        assert field in named.value.fields and long_value[:200] not in named.value.message, named.value.message
    for request, field in training_cases:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await training.RollbackModel(request, timeout=10)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (field, refused.value.details())
        assert field in field_violations(refused.value), refused.value.details()
        assert long_value[:200] not in refused.value.details()
    with pytest.raises(FailedPrecondition) as nothing:
        await _facade(cluster.pki, address, "RollbackModel", O.RollbackModelRequest(config_key="square8_2p"))
    assert "no best model to roll back from" in nothing.value.message
    state = state_pb2_grpc.StateServiceStub(cluster.channel("state"))
    assert not (await state.ListModels(state_pb2.ListModelsRequest(), timeout=5)).models
    assert not (await state.GetBestModels(state_pb2.GetBestModelsRequest(), timeout=5)).models


async def test_jobs_are_submitted_in_batches_all_or_nothing_and_idempotent_per_item(
    cluster: LocalCluster, tmp_path
) -> None:
    """SubmitJobs on the facade: every item validated first, one bad item refuses the
    whole batch naming its index and field (nothing created), keys make each item
    idempotent; the CLI submits --count copies and JSON-lines files through it."""

    await cluster.start_state()
    await cluster.start("nodes", "nodes")
    await cluster.start("jobs", "jobs")
    await cluster.start_gateway("gw-a")
    await cluster.wait_for_leader()
    await cluster.start_agent("node-1")
    gateway = cluster.processes["gw-a"].address
    deadline = time.monotonic() + 10
    while await _node_ids(cluster.pki, gateway) != ["node-1"]:  # its catalog is what submissions are checked against
        assert time.monotonic() < deadline, "node-1 never joined"
        await asyncio.sleep(0.1)

    def sleep(seconds: str, key: str = "") -> O.SubmitJobRequest:  # a kind of this cluster's catalog
        return O.SubmitJobRequest(spec=C.JobSpec(kind="sleep", params={"seconds": seconds}), idempotency_key=key)

    async def count_jobs() -> int:
        return len((await _facade(cluster.pki, gateway, "ListJobs", O.ListJobsRequest())).jobs)

    async def submit(*items: O.SubmitJobRequest) -> O.SubmitJobsResponse:
        return await _facade(cluster.pki, gateway, "SubmitJobs", O.SubmitJobsRequest(jobs=items), timeout=30)

    first = await submit(sleep("0", "k1"), sleep("0.01"))
    assert list(first.created) == [True, True] and len({j.job_id for j in first.jobs}) == 2
    again = await submit(sleep("0", "k1"), sleep("0.02"))
    assert list(again.created) == [False, True] and again.jobs[0].job_id == first.jobs[0].job_id
    before = await count_jobs()
    bad = O.SubmitJobRequest(spec=C.JobSpec(kind="sleep", params={"seconds": "; reboot"}))
    with pytest.raises(InvalidArgument) as refused:
        await submit(sleep("0"), sleep("0"), bad)
    assert [f for f in refused.value.fields if f.startswith("jobs[")] == ["jobs[2].spec.params[seconds]"], refused.value
    with pytest.raises(InvalidArgument) as too_many:
        await submit(*[sleep("0")] * 1001)
    assert "jobs" in too_many.value.fields
    assert await count_jobs() == before  # nothing of a refused batch was created

    counted = await asyncio.to_thread(
        _cli, cluster.pki, "submit", "sleep", "-p", "seconds=0", "--count", "3", "--gateway", gateway, "--json"
    )
    assert counted.returncode == 0, counted.stderr
    assert json.loads(counted.stdout)["created"] == [True, True, True]
    lines = tmp_path / "jobs.jsonl"
    lines.write_text('{"kind": "sleep", "params": {"seconds": 0}}\n\n{"kind": "sleep", "idempotency_key": "t1"}\n')
    from_file = await asyncio.to_thread(_cli, cluster.pki, "submit", "-f", str(lines), "--gateway", gateway)
    assert from_file.returncode == 0 and "submitted 2 jobs" in from_file.stdout, from_file.stderr
    assert await count_jobs() == before + 5
    lines.write_text('{"kind": "sleep"}\n{"kind": "sleep", "colour": "red"}\n')
    wrong = await asyncio.to_thread(_cli, cluster.pki, "submit", "-f", str(lines), "--gateway", gateway)
    assert wrong.returncode == 2 and "line 2: unknown field 'colour'" in wrong.stderr
    neither = await asyncio.to_thread(_cli, cluster.pki, "submit", "--gateway", gateway)
    assert neither.returncode == 2 and "give a job kind" in neither.stderr
    assert await count_jobs() == before + 5
