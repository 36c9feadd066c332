"""NodeSelectorService as a process, placing work on real agents from the watched
membership: the right node wins, every rejection is explained, bad input names the
field, and a departed node is no longer chosen."""

from __future__ import annotations

import asyncio
import signal
import time

import grpc
import pytest

from ringrift.common.v1 import common_pb2
from ringrift.nodes.v1 import nodes_pb2, nodes_pb2_grpc
from ringrift.state.v1 import state_pb2, state_pb2_grpc
from ringrift_client import InvalidArgument
from ringrift_runtime.cluster.cache import ChangeKind
from ringrift_runtime.grpc.status import field_violations
from tests.callers import gateway_client
from tests.integration.cluster.conftest import LEASE_TTL, LocalCluster

A100 = {
    "RINGRIFT_AGENT__GPU__MODEL": "NVIDIA A100-SXM4-80GB",
    "RINGRIFT_AGENT__GPU__COUNT": "1",
    "RINGRIFT_AGENT__GPU__MEMORY_MB": "81920",
}
RTX4090 = {
    "RINGRIFT_AGENT__GPU__MODEL": "NVIDIA GeForce RTX 4090",
    "RINGRIFT_AGENT__GPU__COUNT": "1",
    "RINGRIFT_AGENT__GPU__MEMORY_MB": "24564",
    "RINGRIFT_AGENT__ROLES": '["selfplay", "gauntlet"]',
}
SMALL = {"min_free_ram_mb": 256}


def spec(kind: str, **requirements) -> common_pb2.JobSpec:
    return common_pb2.JobSpec(kind=kind, requirements=common_pb2.ResourceRequirements(**{**SMALL, **requirements}))


@pytest.fixture
async def selector(cluster: LocalCluster):
    await cluster.start_agent("gpu-a100", **A100)
    await cluster.start_agent("gpu-4090", **RTX4090)
    cpu = await cluster.start_agent("cpu-only", RINGRIFT_AGENT__CPU_CORES="64")
    nodes = await cluster.start("nodes", "nodes")
    async with cluster.channel(nodes) as channel:
        stub = nodes_pb2_grpc.NodeSelectorServiceStub(channel)
        deadline = time.monotonic() + 10
        while len((await stub.ListNodes(nodes_pb2.ListNodesRequest(), timeout=5)).nodes) < 3:
            assert time.monotonic() < deadline, "agents never appeared"
            await asyncio.sleep(0.1)
        yield stub, cpu


async def test_best_node_and_explanation(selector) -> None:
    stub, _ = selector
    best = await stub.SelectBestNodeForJob(
        nodes_pb2.SelectBestNodeForJobRequest(spec=spec("selfplay", needs_gpu=True)), timeout=5
    )
    assert best.found and best.best.node_id == "gpu-a100" and best.node.node_id == "gpu-a100"
    assert best.best.gpu_power == 624 and best.best.rank == 1

    cpu_job = await stub.RankNodes(nodes_pb2.RankNodesRequest(spec=spec("selfplay"), top_k=3), timeout=5)
    assert next(s.node_id for s in cpu_job.ranked) == "cpu-only"  # 64 declared cores

    explained = await stub.ExplainPlacement(
        nodes_pb2.ExplainPlacementRequest(spec=spec("train", needs_gpu=True)), timeout=5
    )
    by_node = {s.node_id: s for s in explained.scores}
    assert by_node["gpu-a100"].usable and by_node["gpu-a100"].rank == 1
    assert by_node["gpu-4090"].rejection_reason == nodes_pb2.REJECTION_REASON_MISSING_ROLE
    assert by_node["cpu-only"].rejection_reason == nodes_pb2.REJECTION_REASON_NO_GPU
    assert explained.members == 3 and explained.view_revision > 0

    filtered = await stub.FilterByCapability(
        nodes_pb2.FilterByCapabilityRequest(
            kind="selfplay", requirements=common_pb2.ResourceRequirements(needs_gpu=True, **SMALL)
        ),
        timeout=5,
    )
    assert sorted(n.node_id for n in filtered.nodes) == ["gpu-4090", "gpu-a100"]

    local = await stub.SelectBestNodeForJob(
        nodes_pb2.SelectBestNodeForJobRequest(spec=spec("selfplay", needs_gpu=True), exclude_node_ids=["gpu-a100"]),
        timeout=5,
    )
    assert local.best.node_id == "gpu-4090"

    # Node lists of any length: 1,500 exclusions (names of no member among them) and a
    # list of the only nodes to consider.
    many = [f"gone-{i}" for i in range(1500)]
    ranked = await stub.RankNodes(
        nodes_pb2.RankNodesRequest(spec=spec("selfplay"), top_k=3, exclude_node_ids=[*many, "cpu-only"]), timeout=5
    )
    assert sorted(s.node_id for s in ranked.ranked) == ["gpu-4090", "gpu-a100"]
    only = await stub.RankNodes(
        nodes_pb2.RankNodesRequest(spec=spec("selfplay"), top_k=3, only_node_ids=[*many, "gpu-4090"]), timeout=5
    )
    assert [s.node_id for s in only.ranked] == ["gpu-4090"]


@pytest.mark.parametrize(
    ("method", "request_message", "field"),
    [
        ("SelectBestNodeForJob", nodes_pb2.SelectBestNodeForJobRequest(spec=common_pb2.JobSpec()), "spec.kind"),
        (
            "SelectBestNodeForJob",
            nodes_pb2.SelectBestNodeForJobRequest(spec=common_pb2.JobSpec(kind="x", config_key="square8")),
            "spec.config_key",
        ),
        ("RankNodes", nodes_pb2.RankNodesRequest(spec=spec("selfplay"), top_k=0), "top_k"),
        ("GetNodeScore", nodes_pb2.GetNodeScoreRequest(node_id="10.0.0.1:50060", spec=spec("selfplay")), "node_id"),
        (
            "SelectBestNodeForJob",
            nodes_pb2.SelectBestNodeForJobRequest(spec=spec("selfplay"), exclude_node_ids=[""]),
            "exclude_node_ids[0]",
        ),
        ("FilterByCapability", nodes_pb2.FilterByCapabilityRequest(kind="Bad Kind!"), "kind"),
        (
            "RankNodes",
            nodes_pb2.RankNodesRequest(spec=spec("selfplay"), top_k=1, only_node_ids=["a", "x y"]),
            "only_node_ids[1]",
        ),
    ],
    ids=lambda v: str(v)[:24],
)
async def test_bad_requests_name_the_field(selector, method, request_message, field) -> None:
    stub, _ = selector
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await getattr(stub, method)(request_message, timeout=5)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(caught.value)


async def test_unknown_and_departed_nodes(selector) -> None:
    stub, cpu = selector
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetNodeScore(nodes_pb2.GetNodeScoreRequest(node_id="nobody", spec=spec("selfplay")), timeout=5)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    cpu.signal(signal.SIGKILL)
    deadline = time.monotonic() + LEASE_TTL + 2
    while True:
        ranked = await stub.RankNodes(nodes_pb2.RankNodesRequest(spec=spec("selfplay"), top_k=5), timeout=5)
        if "cpu-only" not in [s.node_id for s in ranked.ranked]:
            break
        assert time.monotonic() < deadline, "a dead node is still offered"
        await asyncio.sleep(0.1)


async def test_reservations_keep_other_work_away_and_survive_a_selector_restart(cluster: LocalCluster) -> None:
    await cluster.start_state()
    assert await cluster.issue_epoch() == 1  # reservations are the leader's, fenced by its epoch
    await cluster.start_agent("gpu-a100", **A100)
    await cluster.start_agent("gpu-4090", **RTX4090)
    nodes = await cluster.start("nodes", "nodes")

    async def best(stub, kind: str) -> str:
        reply = await stub.SelectBestNodeForJob(
            nodes_pb2.SelectBestNodeForJobRequest(spec=spec(kind, needs_gpu=True)), timeout=5
        )
        return reply.best.node_id

    async with cluster.channel(nodes) as channel:
        stub = nodes_pb2_grpc.NodeSelectorServiceStub(channel)
        deadline = time.monotonic() + 10
        while len((await stub.ListNodes(nodes_pb2.ListNodesRequest(), timeout=5)).nodes) < 2:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        assert await best(stub, "selfplay") == "gpu-a100"
        reserved = await stub.ReserveNode(
            nodes_pb2.ReserveNodeRequest(
                node_id="gpu-a100", purpose="training", holder="job-1", ttl_seconds=60, epoch=1
            ),
            timeout=5,
        )
        assert reserved.reservation.holder == "job-1"
        assert await best(stub, "selfplay") == "gpu-4090"
        assert await best(stub, "train") == "gpu-a100"
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ReserveNode(
                nodes_pb2.ReserveNodeRequest(
                    node_id="gpu-a100", purpose="training", holder="job-2", ttl_seconds=60, epoch=1
                ),
                timeout=5,
            )
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "job-1" in caught.value.details()
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ReserveNode(
                nodes_pb2.ReserveNodeRequest(
                    node_id="gpu-a100", purpose="painting", holder="x", ttl_seconds=99_999, epoch=1
                ),
                timeout=5,
            )
        assert {"purpose", "ttl_seconds"} <= set(field_violations(caught.value))

    await cluster.restart(nodes)  # the reservation lives in StateService, not in the selector
    async with cluster.channel(nodes) as channel:
        stub = nodes_pb2_grpc.NodeSelectorServiceStub(channel)
        listed = await stub.ListNodes(nodes_pb2.ListNodesRequest(), timeout=5)
        assert [(r.node_id, r.holder) for r in listed.reservations] == [("gpu-a100", "job-1")]
        deadline = time.monotonic() + 10
        while await best(stub, "selfplay") != "gpu-4090":
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        assert not (
            await stub.ReleaseNode(nodes_pb2.ReleaseNodeRequest(node_id="gpu-a100", holder="job-2", epoch=1), timeout=5)
        ).released
        assert (
            await stub.ReleaseNode(nodes_pb2.ReleaseNodeRequest(node_id="gpu-a100", holder="job-1", epoch=1), timeout=5)
        ).released
        assert await best(stub, "selfplay") == "gpu-a100"


@pytest.mark.parametrize(
    "stored",
    [
        b"{not json",
        b'{"gpu-4090": {"purpose": "training"}, "gpu-a100": {"purpose": "training", "holder": "job-9", '
        b'"expires_at": 4102444800}}',
    ],
    ids=["value", "entry"],
)
async def test_malformed_reservations_are_skipped_reported_and_replaced(cluster: LocalCluster, stored: bytes) -> None:
    """A stored reservations value that is not JSON, or one entry of it that is not a
    reservation: the selector still starts and answers, says which record it skipped (a
    RECORD_SKIPPED event, once), keeps the good entries, and the next reservation replaces it."""
    await cluster.start_state()
    epoch = await cluster.issue_epoch()
    async with cluster.channel("state") as channel:
        state = state_pb2_grpc.StateServiceStub(channel)
        await state.PersistState(
            state_pb2.PersistStateRequest(namespace="nodes", key="reservations", value=stored, epoch=epoch), timeout=5
        )
    await cluster.start_agent("gpu-4090", **RTX4090)
    nodes = await cluster.start("nodes", "nodes")
    async with cluster.channel(nodes) as channel:
        stub = nodes_pb2_grpc.NodeSelectorServiceStub(channel)
        listed = await stub.ListNodes(nodes_pb2.ListNodesRequest(), timeout=5)
        kept = [(r.node_id, r.holder) for r in listed.reservations]
        assert kept == ([] if stored.startswith(b"{not") else [("gpu-a100", "job-9")])
        reserved = await stub.ReserveNode(
            nodes_pb2.ReserveNodeRequest(node_id="gpu-4090", purpose="training", holder="run-1", ttl_seconds=60,
                                         epoch=epoch),
            timeout=5,
        )  # fmt: skip
        assert reserved.reservation.holder == "run-1"
    skipped = await cluster.events([common_pb2.EVENT_TYPE_RECORD_SKIPPED])
    assert [(e.source, e.attributes["kind"]) for e in skipped] == [
        ("nodes", "reservations" if stored.startswith(b"{not") else "reservation")
    ]
    assert skipped[0].subject == ("nodes/reservations version 1" if stored.startswith(b"{not") else "gpu-4090")
    await cluster.restart(nodes)  # the bad record was replaced: nothing more to skip
    async with cluster.channel(nodes) as channel:
        listed = await nodes_pb2_grpc.NodeSelectorServiceStub(channel).ListNodes(
            nodes_pb2.ListNodesRequest(), timeout=5
        )
        assert ("gpu-4090", "run-1") in [(r.node_id, r.holder) for r in listed.reservations]
    assert len(await cluster.events([common_pb2.EVENT_TYPE_RECORD_SKIPPED])) == 1


async def test_a_quarantined_node_gets_no_work_from_any_view_until_lifted_or_over(cluster: LocalCluster) -> None:
    """An operator quarantines a node through the gateway: NodeSelector stops choosing it,
    every membership view (the gateway's, a watcher's) shows it quarantined and tells its
    subscribers, NODE_QUARANTINED says why; lifting it brings it back. Bad requests name
    the field and change nothing; a quarantine ends by itself when its lease does."""
    from ringrift.orchestrator.v1 import orchestrator_pb2 as O
    from ringrift_contracts.membership import membership_cache, quarantine_node

    await cluster.start_state()
    await cluster.start_agent("gpu-a100", **A100)
    await cluster.start_agent("gpu-4090", **RTX4090)
    nodes = await cluster.start("nodes", "nodes")
    await cluster.start_gateway("gw-a")
    await cluster.wait_for_leader()
    watcher = membership_cache(cluster.etcd.client_settings("test", lease_ttl_seconds=LEASE_TTL))
    changes = watcher.subscribe()
    await watcher.start()

    async def best(stub) -> str:
        request = nodes_pb2.SelectBestNodeForJobRequest(spec=spec("selfplay", needs_gpu=True))
        return (await stub.SelectBestNodeForJob(request, timeout=5)).best.node_id

    async def until(predicate, what: str, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while not await predicate():
            assert time.monotonic() < deadline, what
            await asyncio.sleep(0.05)

    async with (
        cluster.channel(nodes) as channel,
        gateway_client(cluster.pki, cluster.processes["gw-a"].address) as facade,
    ):
        stub = nodes_pb2_grpc.NodeSelectorServiceStub(channel)

        async def both_listed() -> bool:
            return len((await stub.ListNodes(nodes_pb2.ListNodesRequest(), timeout=5)).nodes) == 2

        await until(both_listed, "agents never appeared")
        assert await best(stub) == "gpu-a100"

        long_value = "x" * 5000
        bad = [
            (nodes_pb2.QuarantineNodeRequest(node_id="Bad Node!", reason="r"), "node_id"),
            (nodes_pb2.QuarantineNodeRequest(node_id="gpu-a100", reason="  "), "reason"),
            (nodes_pb2.QuarantineNodeRequest(node_id="gpu-a100", reason=long_value), "reason"),
            (nodes_pb2.QuarantineNodeRequest(node_id="gpu-a100", reason="r", duration_seconds=5), "duration_seconds"),
            (
                nodes_pb2.QuarantineNodeRequest(node_id="gpu-a100", reason="r", duration_seconds=10**8),
                "duration_seconds",
            ),
        ]
        for request, field in bad:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.QuarantineNode(request, timeout=5)
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, refused.value.details()
            assert field in field_violations(refused.value) and long_value[:200] not in refused.value.details()
        with pytest.raises(InvalidArgument) as named:
            await facade.quarantine_node(node_id="gpu-a100", timeout=10)
        assert "reason" in named.value.fields  # the facade passes NodeSelector's answer on
        assert not (await stub.ListNodes(nodes_pb2.ListNodesRequest(), timeout=5)).quarantines

        reply = await facade.quarantine_node(
            O.QuarantineNodeRequest(node_id="gpu-a100", reason="its games fail their checks", duration_seconds=3600),
            timeout=10,
        )
        assert reply.quarantine.until.seconds - reply.quarantine.since.seconds in (3599, 3600, 3601)

        async def moved() -> bool:
            return await best(stub) == "gpu-4090"

        await until(moved, "the selector still chooses the quarantined node")
        listed = await stub.ListNodes(nodes_pb2.ListNodesRequest(include_unschedulable=True), timeout=5)
        assert {n.node_id: n.quarantined for n in listed.nodes} == {"gpu-a100": True, "gpu-4090": False}
        assert [(q.node_id, q.reason) for q in listed.quarantines] == [("gpu-a100", "its games fail their checks")]
        assert [n.node_id for n in (await stub.ListNodes(nodes_pb2.ListNodesRequest(), timeout=5)).nodes] == [
            "gpu-4090"
        ]
        gateway_view = await facade.list_nodes(include_unschedulable=True, timeout=10)
        assert {n.node_id for n in gateway_view.nodes if n.quarantined} == {"gpu-a100"}
        assert [q.node_id for q in gateway_view.quarantines] == ["gpu-a100"]
        assert watcher.values()["gpu-a100"].quarantined and watcher.entries["gpu-a100"].value.quarantined
        seen = []
        while not changes.empty():
            seen.append(changes.get_nowait())
        assert any(c.name == "gpu-a100" and c.kind is ChangeKind.UPDATED and c.value.quarantined for c in seen)
        (event,) = await cluster.events([common_pb2.EVENT_TYPE_NODE_QUARANTINED])
        assert event.subject == "gpu-a100" and event.attributes["reason"] == "its games fail their checks"
        assert event.attributes["by"].startswith("gateway:")  # the caller's certificate, not a request field

        assert (await facade.lift_quarantine(node_id="gpu-a100", timeout=10)).lifted
        assert not (await facade.lift_quarantine(node_id="gpu-a100", timeout=10)).lifted

        async def back() -> bool:
            return await best(stub) == "gpu-a100"

        await until(back, "the node never came back")
        assert not watcher.values()["gpu-a100"].quarantined
        assert len(await cluster.events([common_pb2.EVENT_TYPE_NODE_QUARANTINE_LIFTED])) == 1

    # A quarantine under a short lease ends by itself.
    await quarantine_node(cluster.etcd.client_settings("test"), "gpu-4090", "brief", 2, "test")

    async def quarantined() -> bool:
        return watcher.values()["gpu-4090"].quarantined

    async def over() -> bool:
        return not watcher.values()["gpu-4090"].quarantined

    await until(quarantined, "the short quarantine never showed")
    await until(over, "the quarantine outlived its lease", timeout=15)
    await watcher.stop()
