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
import urllib.request
from pathlib import Path

import grpc
import pytest

from ringrift.common.v1 import common_pb2
from ringrift.orchestrator.v1 import orchestrator_pb2 as O, orchestrator_pb2_grpc
from ringrift.state.v1 import state_pb2, state_pb2_grpc
from tests.integration.cluster.conftest import ELECTION_TTL, LocalCluster

HEALTHY, PAUSED = O.LOOP_HEALTH_HEALTHY, O.LOOP_HEALTH_PAUSED
RINGRIFT = str(Path(sys.executable).parent / "ringrift")


async def _facade(address: str, method: str, request, timeout: float = 5):
    async with grpc.aio.insecure_channel(address) as channel:
        return await getattr(orchestrator_pb2_grpc.OrchestratorServiceStub(channel), method)(request, timeout=timeout)


async def _loops(address: str) -> dict[str, O.LoopStatus]:
    reply = await _facade(address, "ListLoops", O.ListLoopsRequest())
    return {loop.name: loop for loop in reply.loops}


async def _wait_loops(address: str, check, timeout: float) -> dict[str, O.LoopStatus]:
    deadline = time.monotonic() + timeout
    loops = {}
    while time.monotonic() < deadline:
        loops = await _loops(address)
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
    running = await _wait_loops(leader_address, lambda l: l and all(x.health == HEALTHY and x.runs > 0 for x in l.values()), 10)
    assert set(running) == {"JobReaper", "JobDispatcher"}  # the pipeline loops are off in this cluster
    # The other replica answers from the leader's heartbeat; a pause taken there reaches the leader.
    await _wait_loops(other_address, lambda l: l["JobDispatcher"].runs > 0, 5)
    paused = await _facade(other_address, "PauseLoop", O.PauseLoopRequest(name="JobReaper"))
    assert paused.loop.health == PAUSED
    await _wait_loops(leader_address, lambda l: l["JobReaper"].health == PAUSED, 3)

    before = (await cluster.epoch()).epoch
    killed_at = time.monotonic()
    cluster.processes[leader].signal(signal.SIGKILL)
    await cluster.wait_for_leader(timeout=ELECTION_TTL + 5, above=before)
    taken = await _wait_loops(
        other_address, lambda l: l["JobDispatcher"].health == HEALTHY and l["JobDispatcher"].runs > 0, ELECTION_TTL + 5)
    took_over = time.monotonic() - killed_at
    assert took_over <= ELECTION_TTL + 2, f"the loops restarted {took_over:.1f} s after the kill"
    assert taken["JobReaper"].health == PAUSED  # the pause is stored, not a property of the old leader
    resumed = await _facade(other_address, "ResumeLoop", O.ResumeLoopRequest(name="JobReaper"))
    assert resumed.loop.name == "JobReaper"
    await _wait_loops(other_address, lambda l: l["JobReaper"].health == HEALTHY and l["JobReaper"].runs > 0, 5)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await _facade(other_address, "PauseLoop", O.PauseLoopRequest(name="NoSuchLoop"))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "JobReaper" in refused.value.details()


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
    replies = await asyncio.gather(*(_facade(gateway.address, "GetClusterStatus", O.GetClusterStatusRequest())
                                     for _ in range(20)))
    after = _metric(gateway.metrics_port, "ringrift_gateway_status_computations")
    assert after - before == 1
    assert len({r.computed_at.ToNanoseconds() for r in replies}) == 1
    status = replies[0]
    assert status.leader_id == leader and status.epoch > 0
    assert {l.name for l in status.loops} == {"JobReaper", "JobDispatcher"}
    assert [n.node_id for n in status.nodes] == ["node-1"]


async def _store_ratings(cluster: LocalCluster) -> None:
    """Two fits of one config, as the TrainingCoordinator would store them."""
    epoch = (await cluster.epoch()).epoch
    async with grpc.aio.insecure_channel(cluster.state.address) as channel:
        stub = state_pb2_grpc.StateServiceStub(channel)
        for elo in (1150.0, 1320.0):
            await stub.PutRatings(state_pb2.PutRatingsRequest(config_key="square8_2p", epoch=epoch, ratings=[
                common_pb2.Rating(config_key="square8_2p", player="random", elo=1000, games=100),
                common_pb2.Rating(config_key="square8_2p", player="square8_2p.g1", elo=elo, games=100),
            ]), timeout=5)
            await asyncio.sleep(1.1)


async def test_the_dashboard_shows_live_nodes_and_a_rating_chart_without_console_errors(cluster: LocalCluster, tmp_path) -> None:
    if shutil.which("chromium") is None:
        if os.environ.get("CI"):
            pytest.fail("Debian's chromium is missing; scripts/test.sh installs it (bootstrap.sh --tests)")
        pytest.skip("Debian's chromium is not installed: run ./scripts/test.sh, which installs it")
    leader, _ = await _gateways(cluster)
    await cluster.start_agent("node-1")
    await cluster.start_agent("node-2")
    await _store_ratings(cluster)
    port = cluster.processes[leader].metrics_port
    await asyncio.sleep(1.0)
    status = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=5).read())
    assert [n["node_id"] for n in status["nodes"]] == ["node-1", "node-2"]
    command = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               f"--user-data-dir={tmp_path / 'chromium'}", "--virtual-time-budget=8000",
               "--enable-logging=stderr", "--v=0", "--dump-dom", f"http://127.0.0.1:{port}/"]
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


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([RINGRIFT, *args], capture_output=True, text=True, timeout=timeout,
                          env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})


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
        result = await asyncio.to_thread(_cli, *args)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.returncode != 0, name
        assert len(lines) == 1 and hint in lines[0], (name, result.stderr)
        assert "Traceback" not in result.stderr + result.stdout, name
    ok = await asyncio.to_thread(_cli, "status", "--gateway", gateway, "--json")
    assert ok.returncode == 0, ok.stderr
    status = json.loads(ok.stdout)
    assert status["leaderId"] == "gw-a" and [n["nodeId"] for n in status["nodes"]] == ["node-1"]
    text = await asyncio.to_thread(_cli, "status", "--gateway", gateway)
    assert "leader gw-a" in text.stdout and "JobDispatcher" in text.stdout and "node-1" in text.stdout


async def _node_ids(address: str) -> list[str]:
    reply = await _facade(address, "ListNodes", O.ListNodesRequest(include_unschedulable=True))
    return [n.node_id for n in reply.nodes]


async def test_the_local_provider_starts_real_agents_and_removes_them(cluster: LocalCluster, tmp_path) -> None:
    from ringrift_gateway.adapters.scaling import LocalProcessProvider, stop_local_agents
    from ringrift_runtime.settings import RingriftSettings

    await cluster.start_state()
    gateway = (await cluster.start_gateway("gw-a")).address
    settings = RingriftSettings(etcd={"endpoints": [cluster.etcd.endpoint], "cluster_name": "test"})
    provider = LocalProcessProvider(settings, tmp_path / "autoscale")
    try:
        assert await provider.add(2) == ["auto-1", "auto-2"]
        deadline = time.monotonic() + 10
        while await _node_ids(gateway) != ["auto-1", "auto-2"] and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert await _node_ids(gateway) == ["auto-1", "auto-2"]
        assert provider.manages("auto-1") and not provider.manages("node-1")
        await provider.remove("auto-1")
        while await _node_ids(gateway) != ["auto-2"] and time.monotonic() < deadline + 10:
            await asyncio.sleep(0.1)
        assert await _node_ids(gateway) == ["auto-2"] and not provider.manages("auto-1")
        assert await provider.add(1) == ["auto-3"]  # a removed node's folder stays; ids are not reused
    finally:
        stop_local_agents(tmp_path / "autoscale")
    while await _node_ids(gateway) and time.monotonic() < deadline + 20:
        await asyncio.sleep(0.1)
    assert await _node_ids(gateway) == []
