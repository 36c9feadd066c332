"""Leader election and fencing with real processes: SIGKILL failover, graceful
handover, a paused leader that wakes up after losing its lease (repeatedly), and a
restarted leader that does not believe it still leads."""

from __future__ import annotations

import asyncio
import json
import signal
import time

import grpc
import pytest

from ringrift.common.v1 import common_pb2
from ringrift.state.v1 import state_pb2, state_pb2_grpc
from ringrift_runtime.grpc.status import error_reason
from tests.integration.cluster.checker import acting_leader_violations
from tests.integration.cluster.conftest import ELECTION_TTL, LocalCluster

PAUSE_ITERATIONS = 20


async def _two_gateways(cluster: LocalCluster):
    await cluster.start_state()
    await cluster.start_gateway("gw-a")
    await cluster.start_gateway("gw-b")
    return await cluster.wait_for_leader()


async def test_sigkill_leader_fails_over_within_ttl_plus_one_second(cluster: LocalCluster) -> None:
    first = await _two_gateways(cluster)
    other = "gw-b" if first.leader_id == "gw-a" else "gw-a"
    killed_at = time.monotonic()
    cluster.processes[first.leader_id].signal(signal.SIGKILL)
    second = await cluster.wait_for_leader(timeout=ELECTION_TTL + 5, above=first.epoch)
    failover = time.monotonic() - killed_at
    assert second.leader_id == other and second.epoch > first.epoch
    assert failover <= ELECTION_TTL + 1, f"failover took {failover:.2f}s"


async def test_graceful_stop_hands_over_in_under_half_a_second(cluster: LocalCluster) -> None:
    first = await _two_gateways(cluster)
    stopped_at = time.monotonic()
    cluster.processes[first.leader_id].signal(signal.SIGTERM)
    second = await cluster.wait_for_leader(timeout=5, above=first.epoch)
    handover = time.monotonic() - stopped_at
    assert second.leader_id != first.leader_id
    assert handover < 0.5, f"handover took {handover:.2f}s"
    assert await asyncio.to_thread(cluster.processes[first.leader_id].wait, 10) == 0
    lost = await cluster.events([common_pb2.EVENT_TYPE_LEADER_LOST])
    assert any(e.subject == first.leader_id and e.attributes["reason"] == "resigned" for e in lost)


async def _heartbeat_leader(cluster: LocalCluster) -> dict:
    async with cluster.channel("state") as channel:
        stub = state_pb2_grpc.StateServiceStub(channel)
        reply = await stub.LoadState(state_pb2.LoadStateRequest(namespace="cluster", key="leader"), timeout=5)
    return json.loads(reply.value) if reply.found else {}


async def _stale_write_is_refused(cluster: LocalCluster, epoch: int) -> None:
    async with cluster.channel("state") as channel:
        stub = state_pb2_grpc.StateServiceStub(channel)
        event = common_pb2.Event(type=common_pb2.EVENT_TYPE_NODE_JOINED, source="old-leader", epoch=epoch)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.PublishEvent(state_pb2.PublishEventRequest(event=event), timeout=5)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_reason(caught.value) == "STALE_EPOCH"


async def _paused_leader_round(cluster: LocalCluster, iteration: int) -> None:
    current = await cluster.wait_for_leader()
    old = cluster.processes[current.leader_id]
    old.signal(signal.SIGSTOP)
    try:
        new = await cluster.wait_for_leader(timeout=ELECTION_TTL + 5, above=current.epoch)
    finally:
        old.signal(signal.SIGCONT)
    assert new.leader_id != current.leader_id, f"iteration {iteration}"

    # The old leader notices: it announces the loss of its term.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lost = await cluster.events([common_pb2.EVENT_TYPE_LEADER_LOST])
        if any(e.subject == current.leader_id and e.attributes.get("epoch") == str(current.epoch) for e in lost):
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail(f"iteration {iteration}: {current.leader_id} never noticed it lost epoch {current.epoch}")

    # Whatever it attempts with its old epoch changes nothing.
    await _stale_write_is_refused(cluster, current.epoch)
    # Once the new leader's heartbeat is stored, the old leader never overwrites it.
    deadline = time.monotonic() + 10
    while (await _heartbeat_leader(cluster)).get("epoch", 0) < new.epoch:
        assert time.monotonic() < deadline, f"iteration {iteration}: epoch {new.epoch} never wrote a heartbeat"
        await asyncio.sleep(0.02)
    for _ in range(10):
        beat = await _heartbeat_leader(cluster)
        assert beat.get("epoch", 0) >= new.epoch, f"iteration {iteration}: heartbeat went back to {beat}"
        await asyncio.sleep(0.05)
    assert old.process.poll() is None  # it survived and went back to campaigning


@pytest.mark.slow  # a leader paused past its lease, several times
async def test_paused_leader_is_fenced_and_notices_repeatedly(cluster: LocalCluster) -> None:
    await _two_gateways(cluster)
    await cluster.start_agent("node-a")  # membership acts for the leaders to publish
    for iteration in range(PAUSE_ITERATIONS):
        await _paused_leader_round(cluster, iteration)
    events = await cluster.events()
    assert acting_leader_violations(events) == []
    elected = [e for e in events if e.type == common_pb2.EVENT_TYPE_LEADER_ELECTED]
    assert len(elected) >= PAUSE_ITERATIONS + 1


@pytest.mark.soak
async def test_paused_leader_soak(cluster: LocalCluster) -> None:
    await _two_gateways(cluster)
    for iteration in range(200):
        await _paused_leader_round(cluster, iteration)
    assert acting_leader_violations(await cluster.events()) == []


async def test_restarted_leader_does_not_believe_it_leads(cluster: LocalCluster) -> None:
    first = await _two_gateways(cluster)
    process = cluster.processes[first.leader_id]
    process.signal(signal.SIGKILL)
    await asyncio.to_thread(process.wait, 5)
    await asyncio.to_thread(process.start)  # back at once, before its old lease expires
    second = await cluster.wait_for_leader(timeout=ELECTION_TTL + 5, above=first.epoch)
    assert second.leader_id != first.leader_id
    await asyncio.sleep(ELECTION_TTL)
    after = await cluster.epoch()
    assert (after.leader_id, after.epoch) == (second.leader_id, second.epoch)
    elected = await cluster.events([common_pb2.EVENT_TYPE_LEADER_ELECTED])
    assert [e.subject for e in elected] == [first.leader_id, second.leader_id]
    assert acting_leader_violations(await cluster.events()) == []
