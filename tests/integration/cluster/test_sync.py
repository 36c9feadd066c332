"""SyncPlanner with real processes: StateService, NodeSelector, SyncPlanner, a leading
gateway (for the epoch) and three agents. Plans move only what is needed (by sha256),
executions pull agent to agent, record every transfer and publish SYNC_* events."""

from __future__ import annotations

import shutil

import grpc
import pytest

from ringrift.common.v1 import common_pb2 as C
from ringrift.nodes.v1 import nodes_pb2, nodes_pb2_grpc
from ringrift.state.v1 import state_pb2, state_pb2_grpc
from ringrift.sync.v1 import sync_pb2, sync_pb2_grpc
from ringrift_agent.adapters.files import sha256_of
from ringrift_reference.data import write_games
from ringrift_reference.players import RandomPlayer, play_game
from ringrift_runtime.grpc.status import field_violations
from tests.integration.cluster.conftest import LocalCluster
from tests.polling import until

PLAYERS = {"RINGRIFT_AGENT__ROLES": '["selfplay", "gauntlet"]'}


async def start(cluster: LocalCluster):
    await cluster.start_state()
    await cluster.start("nodes", "nodes")
    await cluster.start("sync", "sync")
    await cluster.start("gateway", "gw")
    for node_id, env in (("trainer", {}), ("player-1", PLAYERS), ("player-2", PLAYERS)):
        await cluster.start_agent(node_id, **env)
    leader = await cluster.wait_for_leader()
    channel = cluster.channel("sync")
    stub = sync_pb2_grpc.SyncPlannerServiceStub(channel)
    # SyncPlanner and NodeSelector learn of members through their etcd watches, a moment
    # after the agents register.
    nodes = nodes_pb2_grpc.NodeSelectorServiceStub(cluster.channel("nodes"))
    agents = {"trainer", "player-1", "player-2"}

    async def both_see_the_agents() -> bool:
        manifests = await stub.CollectManifests(sync_pb2.CollectManifestsRequest(), timeout=10)
        listed = await nodes.ListNodes(nodes_pb2.ListNodesRequest(), timeout=10)
        return {m.node_id for m in manifests.manifests} == agents == {n.node_id for n in listed.nodes}

    await until("SyncPlanner and NodeSelector see the three agents", both_see_the_agents)
    return stub, leader.epoch


def data(cluster: LocalCluster, node_id: str):
    return cluster.root / node_id / "data"


def games_file(path, seed: int) -> None:
    records = [play_game("square6_2p", [RandomPlayer(), RandomPlayer()], seed * 100 + i) for i in range(5)]
    write_games(path, records, "gen0", {"seed": seed})


async def run(stub, plan_id: str, epoch: int) -> list[sync_pb2.ExecuteSyncPlanResponse]:
    return [
        p async for p in stub.ExecuteSyncPlan(sync_pb2.ExecuteSyncPlanRequest(plan_id=plan_id, epoch=epoch), timeout=60)
    ]


async def test_games_to_trainer_and_model_to_players_move_only_what_is_needed(cluster: LocalCluster):
    stub, epoch = await start(cluster)
    games = "games/square6_2p"
    games_file(data(cluster, "player-1") / games / "a.db", 1)
    games_file(data(cluster, "player-2") / games / "b.db", 2)
    # The same content on both players, and already on the trainer under another name.
    games_file(data(cluster, "player-1") / games / "c.db", 3)
    (data(cluster, "player-2") / games).mkdir(parents=True, exist_ok=True)
    shutil.copy(data(cluster, "player-1") / games / "c.db", data(cluster, "player-2") / games / "c.db")
    (data(cluster, "trainer") / games).mkdir(parents=True, exist_ok=True)
    shutil.copy(data(cluster, "player-1") / games / "c.db", data(cluster, "trainer") / games / "c-old.db")
    games_file(data(cluster, "player-1") / "games/square8_2p/other.db", 4)  # another config: stays

    # Refreshed: the wait for the agents cached their manifests before these files were written.
    manifests = await stub.CollectManifests(
        sync_pb2.CollectManifestsRequest(config_key="square6_2p", refresh=True), timeout=10
    )
    assert not manifests.partial and {m.node_id for m in manifests.manifests} == {"trainer", "player-1", "player-2"}
    assert sum(f.game_count for m in manifests.manifests for f in m.files) == 5 * 5

    plan = (
        await stub.CreateSyncPlan(
            sync_pb2.CreateSyncPlanRequest(
                goal=sync_pb2.SYNC_GOAL_GAMES_TO_TRAINER,
                config_key="square6_2p",
                target_node_ids=["trainer"],
            ),
            timeout=10,
        )
    ).plan
    assert sorted(t.file.path for t in plan.transfers) == [f"{games}/a.db", f"{games}/b.db"]
    assert {t.target_node_id for t in plan.transfers} == {"trainer"}
    assert [s.reason for s in plan.skipped] == ["already present (same sha256)"]

    progress = await run(stub, plan.plan_id, epoch)
    assert progress[-1].finished and progress[-1].transfers_done == 2 and progress[-1].transfers_failed == 0
    for name, holder in (("a.db", "player-1"), ("b.db", "player-2")):
        assert sha256_of(data(cluster, "trainer") / games / name) == sha256_of(data(cluster, holder) / games / name)
    assert not (data(cluster, "trainer") / "games/square8_2p").exists()

    again = (
        await stub.CreateSyncPlan(
            sync_pb2.CreateSyncPlanRequest(
                goal=sync_pb2.SYNC_GOAL_GAMES_TO_TRAINER,
                config_key="square6_2p",
                target_node_ids=["trainer"],
            ),
            timeout=10,
        )
    ).plan
    assert not again.transfers and len(again.skipped) == 3

    model = data(cluster, "trainer") / "models/square6_2p/m1.npz"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"weights" * 1000)
    models = (
        await stub.CreateSyncPlan(
            sync_pb2.CreateSyncPlanRequest(
                goal=sync_pb2.SYNC_GOAL_MODEL_TO_PLAYERS,
                config_key="square6_2p",
                model_sha256=sha256_of(model),
            ),
            timeout=10,
        )
    ).plan
    assert sorted(t.target_node_id for t in models.transfers) == ["player-1", "player-2"]
    assert {t.file.path for t in models.transfers} == {"models/square6_2p/m1.npz"}
    await run(stub, models.plan_id, epoch)
    for player in ("player-1", "player-2"):
        assert (data(cluster, player) / "models/square6_2p/m1.npz").read_bytes() == model.read_bytes()

    async with cluster.channel("state") as channel:
        state = state_pb2_grpc.StateServiceStub(channel)
        records = (
            await state.ListSyncTransfers(state_pb2.ListSyncTransfersRequest(plan_id=plan.plan_id), timeout=5)
        ).transfers
        assert sorted(r.state for r in records) == [state_pb2.TRANSFER_STATE_COMPLETED] * 2
    types = [e.type for e in await cluster.events([C.EVENT_TYPE_SYNC_STARTED, C.EVENT_TYPE_SYNC_COMPLETED])]
    assert types == [C.EVENT_TYPE_SYNC_STARTED, C.EVENT_TYPE_SYNC_COMPLETED] * 2

    status = await stub.GetSyncPlan(sync_pb2.GetSyncPlanRequest(plan_id=plan.plan_id), timeout=5)
    assert status.progress.finished and status.progress.bytes_done == status.plan.total_bytes


async def test_bad_requests_name_the_field_and_move_nothing(cluster: LocalCluster):
    stub, epoch = await start(cluster)
    cases = [
        (sync_pb2.CreateSyncPlanRequest(config_key="square6_2p"), "goal"),
        (sync_pb2.CreateSyncPlanRequest(goal=sync_pb2.SYNC_GOAL_GAMES_TO_TRAINER, config_key="square6"), "config_key"),
        (
            sync_pb2.CreateSyncPlanRequest(
                goal=sync_pb2.SYNC_GOAL_GAMES_TO_TRAINER, config_key="square6_2p", target_node_ids=["Bad Node!"]
            ),
            "target_node_ids[0]",
        ),
    ]
    for request, field in cases:
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await stub.CreateSyncPlan(request, timeout=10)
        assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT and field in field_violations(failed.value)
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await run(stub, "plan-nope", epoch)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as no_model:
        await stub.CreateSyncPlan(
            sync_pb2.CreateSyncPlanRequest(goal=sync_pb2.SYNC_GOAL_MODEL_TO_PLAYERS, config_key="square6_2p"),
            timeout=10,
        )
    assert no_model.value.code() == grpc.StatusCode.NOT_FOUND

    games_file(data(cluster, "player-1") / "games/square6_2p/a.db", 1)
    plan = (
        await stub.CreateSyncPlan(
            sync_pb2.CreateSyncPlanRequest(
                goal=sync_pb2.SYNC_GOAL_GAMES_TO_TRAINER,
                config_key="square6_2p",
                target_node_ids=["trainer"],
            ),
            timeout=10,
        )
    ).plan
    assert len(plan.transfers) == 1
    with pytest.raises(grpc.aio.AioRpcError) as unfenced:
        await run(stub, plan.plan_id, 0)
    assert unfenced.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "epoch" in field_violations(unfenced.value)
    assert not (data(cluster, "trainer") / "games/square6_2p/a.db").exists()
