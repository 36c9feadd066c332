"""Membership with real agents: every watcher sees a killed agent leave within TTL + 1 s
and a restarted one rejoin; the leader records both in the event log once; node ids are
validated; the agent fences stale epochs across restarts; the control plane survives an
etcd restart under load and converges."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest

from ringrift.agent.v1 import agent_pb2, agent_pb2_grpc
from ringrift.common.v1 import common_pb2
from ringrift_client import RingriftError
from ringrift_contracts.membership import membership_cache
from ringrift_runtime.cluster.cache import ChangeKind
from ringrift_runtime.cluster.registry import control_plane_cache
from ringrift_runtime.grpc.status import error_reason, field_violations
from ringrift_runtime.settings import EtcdSettings
from tests.callers import gateway_client
from tests.fakes.state import serve_issued_epochs
from tests.integration.cluster.conftest import LEASE_TTL, LocalCluster


def _etcd_settings(cluster: LocalCluster) -> EtcdSettings:
    return cluster.etcd.client_settings("test", lease_ttl_seconds=LEASE_TTL)


async def _wait(predicate, timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.05)
    pytest.fail(message)


async def test_agent_killed_leaves_for_every_watcher_and_rejoins(cluster: LocalCluster) -> None:
    await cluster.start_state()
    await cluster.start_gateway("gw-a")
    await cluster.wait_for_leader()
    agent = await cluster.start_agent(
        "node-a", RINGRIFT_AGENT__GPU__MODEL="NVIDIA A100", RINGRIFT_AGENT__GPU__COUNT="2"
    )
    watchers = [membership_cache(_etcd_settings(cluster)) for _ in range(3)]
    queues = [w.subscribe() for w in watchers]
    for watcher in watchers:
        await watcher.start()

    async def all_see_member() -> bool:
        return all("node-a" in w.values() for w in watchers)

    await _wait(all_see_member, 10, "node-a never joined")
    node = watchers[0].values()["node-a"]
    assert node.address == agent.address and node.declared.gpu.count == 2
    assert node.detected.cpu_cores >= 1 and node.metrics.measured_at.seconds > 0

    killed_at = time.monotonic()
    agent.signal(signal.SIGKILL)
    for queue in queues:
        while True:
            change = await asyncio.wait_for(queue.get(), LEASE_TTL + 2)
            if change.kind == ChangeKind.LEFT and change.name == "node-a":
                break
    left_after = time.monotonic() - killed_at
    assert left_after <= LEASE_TTL + 1, f"NODE_LEFT after {left_after:.2f}s"

    async def left_recorded() -> bool:
        events = await cluster.events([common_pb2.EVENT_TYPE_NODE_LEFT])
        return any(e.subject == "node-a" for e in events)

    await _wait(left_recorded, 5, "the leader did not record NODE_LEFT")

    await asyncio.to_thread(agent.start)
    await _wait(all_see_member, 10, "node-a never rejoined")
    events = await cluster.events([common_pb2.EVENT_TYPE_NODE_JOINED, common_pb2.EVENT_TYPE_NODE_LEFT])

    async def rejoin_recorded() -> bool:
        nonlocal events
        events = await cluster.events([common_pb2.EVENT_TYPE_NODE_JOINED, common_pb2.EVENT_TYPE_NODE_LEFT])
        return [e.type for e in events if e.subject == "node-a"] == [
            common_pb2.EVENT_TYPE_NODE_JOINED,
            common_pb2.EVENT_TYPE_NODE_LEFT,
            common_pb2.EVENT_TYPE_NODE_JOINED,
        ]

    await _wait(rejoin_recorded, 5, f"membership events are not joined/left/joined once each: {events}")
    for watcher in watchers:
        await watcher.stop()


async def test_graceful_agent_stop_leaves_at_once(cluster: LocalCluster) -> None:
    agent = await cluster.start_agent("node-b")
    watcher = membership_cache(_etcd_settings(cluster))
    await watcher.start()
    await _wait(lambda: _true("node-b" in watcher.values()), 10, "node-b never joined")
    stopped_at = time.monotonic()
    agent.signal(signal.SIGTERM)
    await _wait(lambda: _true("node-b" not in watcher.values()), 1.0, "node-b still a member after SIGTERM")
    assert time.monotonic() - stopped_at < LEASE_TTL  # revoked, not expired
    assert await asyncio.to_thread(agent.wait, 10) == 0
    await watcher.stop()


async def _true(value: bool) -> bool:
    return value


@pytest.mark.parametrize(
    ("node_id", "message"),
    [
        ("", "agent.node_id is required"),
        ("10.0.0.5:50060", "looks like an address"),
        ("Bad Node!", "is not a node id"),
    ],
)
def test_agent_refuses_bad_node_ids(tmp_path: Path, node_id: str, message: str) -> None:
    script = Path(sys.executable).parent / "ringrift-agent"
    result = subprocess.run(
        [str(script)],
        env={"RINGRIFT_AGENT__NODE_ID": node_id, "RINGRIFT_AGENT__DATA_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert message in result.stderr


async def test_agent_fences_stale_epochs_across_restarts(cluster: LocalCluster) -> None:
    async with serve_issued_epochs(cluster.pki, 10) as (_, state):
        await _fences_stale_epochs(cluster, await cluster.start_agent("node-c", RINGRIFT_ENDPOINTS__STATE=state))


async def _fences_stale_epochs(cluster: LocalCluster, agent) -> None:

    def request(epoch: int) -> agent_pb2.RunJobRequest:
        return agent_pb2.RunJobRequest(
            job_id=f"j{epoch}", attempt=1, epoch=epoch, spec=common_pb2.JobSpec(kind="sleep")
        )

    async def run_job(epoch: int) -> grpc.aio.AioRpcError:
        async with cluster.channel(agent) as channel:
            stub = agent_pb2_grpc.NodeAgentServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.RunJob(request(epoch), timeout=5)
            return caught.value

    async with cluster.channel(agent) as channel:
        admitted = await agent_pb2_grpc.NodeAgentServiceStub(channel).RunJob(request(10), timeout=5)
    assert admitted.started
    stale = await run_job(5)
    assert stale.code() == grpc.StatusCode.FAILED_PRECONDITION and error_reason(stale) == "STALE_EPOCH"
    forged = await run_job(2**62)  # never issued: refused, and not remembered (past 2**63 - 1: INVALID_ARGUMENT)
    assert forged.code() == grpc.StatusCode.FAILED_PRECONDITION and "never issued" in forged.details()
    missing = await run_job(0)
    assert missing.code() == grpc.StatusCode.INVALID_ARGUMENT and "epoch" in field_violations(missing)

    await cluster.restart(agent)
    stale = await run_job(9)
    assert error_reason(stale) == "STALE_EPOCH"  # the maximum survived the restart
    async with cluster.channel(agent) as channel:
        info = await agent_pb2_grpc.NodeAgentServiceStub(channel).GetNodeInfo(agent_pb2.GetNodeInfoRequest(), timeout=5)
    assert info.max_epoch_seen == 10 and info.node.node_id == "node-c"


async def test_control_plane_recovers_from_etcd_restart_under_load(cluster: LocalCluster) -> None:
    await cluster.start_state()
    gateways = [await cluster.start_gateway("gw-a"), await cluster.start_gateway("gw-b")]
    agents = [await cluster.start_agent("node-a"), await cluster.start_agent("node-b")]
    before = await cluster.wait_for_leader()

    async def load(stop: asyncio.Event, failures: list[str]) -> int:
        calls = 0
        async with gateway_client(cluster.pki, gateways[0].address) as client:
            while not stop.is_set():
                try:
                    await client.get_cluster_status(timeout=5)
                    calls += 1
                except RingriftError as exc:
                    failures.append(exc.code.name)
                await asyncio.sleep(0)
        return calls

    stop, failures = asyncio.Event(), []
    loader = asyncio.ensure_future(load(stop, failures))
    await asyncio.sleep(1)
    await asyncio.to_thread(cluster.etcd.stop, True)
    await asyncio.sleep(LEASE_TTL + 2)  # down for longer than every lease's TTL
    await asyncio.to_thread(cluster.etcd.start)

    settings = _etcd_settings(cluster)
    members, services = membership_cache(settings), control_plane_cache(settings)
    await members.start()
    await services.start()

    async def converged() -> bool:
        async with gateway_client(cluster.pki, gateways[1].address) as client:
            status = await client.get_cluster_status(timeout=5)
        registered = {name.split("/")[0] for name in services.values()}
        return (
            sorted(members.values()) == ["node-a", "node-b"]
            and sorted(n.node_id for n in status.nodes) == ["node-a", "node-b"]
            and {"state", "gateway"} <= registered
            and len([n for n in services.values() if n.startswith("gateway/")]) == 2
            and bool(status.leader_id)
        )

    await _wait(converged, 20, "the cluster view did not converge after the etcd restart")
    stop.set()
    calls = await loader
    assert calls > 50 and failures == []  # reads kept being served throughout
    for process in [*gateways, *agents, cluster.state]:
        assert process.process.poll() is None, f"{process.service} crashed"
    after = await cluster.wait_for_leader()
    assert after.epoch >= before.epoch
    await members.stop()
    await services.stop()


async def test_leader_records_nodes_seen(cluster: LocalCluster) -> None:
    from ringrift.state.v1 import state_pb2, state_pb2_grpc

    await cluster.start_state()
    await cluster.start_gateway("gw-a")
    await cluster.wait_for_leader()
    agent = await cluster.start_agent("node-seen")

    async def recorded(alive: bool) -> bool:
        async with cluster.channel("state") as channel:
            reply = await state_pb2_grpc.StateServiceStub(channel).ListNodesSeen(
                state_pb2.ListNodesSeenRequest(), timeout=5
            )
        return any(r.node.node_id == "node-seen" and r.alive == alive for r in reply.nodes)

    await _wait(lambda: recorded(True), 10, "the node was never recorded as seen")
    agent.signal(signal.SIGTERM)
    await _wait(lambda: recorded(False), 10, "the departure was never recorded")
