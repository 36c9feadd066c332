"""Nodes seen, models and best pointers, matches, ratings, per-config statistics and sync
transfers in StateService's store, against SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from ringrift.common.v1 import common_pb2 as C
from ringrift.state.v1 import state_pb2 as S
from ringrift_runtime.db import Database, migrate
from ringrift_runtime.errors import NotFound, StaleEpoch
from ringrift_state.adapters.sql import SqlStateRepository
from ringrift_state.adapters.sql_registry import SqlRegistry
from ringrift_state.domain.model import EventFilter
from ringrift_state.main import MIGRATIONS
from tests.integration.state.conftest import claim_until

SHA = "ab" * 32


@pytest.fixture
async def stores(database_url: str):
    db = Database(database_url)
    await migrate(db, MIGRATIONS)
    try:
        yield SqlRegistry(db), SqlStateRepository(db)
    finally:
        await db.dispose()


async def test_nodes_seen_keep_first_seen_and_liveness(stores) -> None:
    registry, _ = stores
    await registry.record_nodes([C.NodeInfo(node_id="a", address="h:1"), C.NodeInfo(node_id="b")], [], 0)
    first = {r.node.node_id: r for r in await registry.nodes(False)}
    await registry.record_nodes([C.NodeInfo(node_id="a", address="h:2")], ["b"], 0)
    records = {r.node.node_id: r for r in await registry.nodes(False)}
    assert records["a"].node.address == "h:2" and records["a"].first_seen == first["a"].first_seen
    assert records["a"].alive and not records["b"].alive
    assert [r.node.node_id for r in await registry.nodes(True)] == ["a"]


async def test_models_promotion_moves_the_best_pointer_and_logs_events(stores) -> None:
    registry, state = stores
    gen0 = await registry.register_model(
        C.Model(config_key="square8_2p", generation=0, path="models/g0", sha256=SHA), 0
    )
    gen1 = await registry.register_model(
        C.Model(config_key="square8_2p", generation=1, path="models/g1", sha256=SHA), 0
    )
    assert gen0.status == C.MODEL_STATUS_CANDIDATE and gen0.model_id != gen1.model_id
    _, previous = await registry.set_model_status(gen0.model_id, C.MODEL_STATUS_PROMOTED, "", 0)
    assert previous == ""
    _, previous = await registry.set_model_status(gen1.model_id, C.MODEL_STATUS_PROMOTED, "", 0)
    assert previous == gen0.model_id
    rejected, _ = await registry.set_model_status(gen0.model_id, C.MODEL_STATUS_ARCHIVED, "superseded", 0)
    assert rejected.status_reason == "superseded"
    found, best, _ = await registry.list_models("square8_2p", [], 10, "")
    assert best == {"square8_2p": gen1.model_id} and len(found) == 2
    promoted, _, _ = await registry.list_models("", [C.MODEL_STATUS_PROMOTED], 10, "")
    assert [m.model_id for m in promoted] == [gen1.model_id]
    events = await state.list_events(0, EventFilter(types=frozenset({C.EVENT_TYPE_MODEL_PROMOTED})), 10)
    assert [e.event.subject for e in events] == [gen0.model_id, gen1.model_id]
    with pytest.raises(NotFound):
        await registry.set_model_status("missing", C.MODEL_STATUS_PROMOTED, "", 0)


async def test_best_models_are_one_per_config_whatever_the_number_of_models(stores) -> None:
    registry, state = stores
    assert await registry.best_models([]) == []
    promoted, first = {}, {}
    for config in ("square8_2p", "square6_2p"):
        for generation in range(3):
            model = await registry.register_model(
                C.Model(config_key=config, generation=generation, path=f"models/{config}/g{generation}", sha256=SHA), 0
            )
            if generation < 2:  # generation 2 stays a candidate: the best is generation 1
                await registry.set_model_status(model.model_id, C.MODEL_STATUS_PROMOTED, "", 0)
                promoted[config] = model.model_id
                first.setdefault(config, model.model_id)
    await registry.register_model(C.Model(config_key="hex8_3p", generation=0, path="models/h", sha256=SHA), 0)
    best = await registry.best_models([])
    assert [(m.config_key, m.model_id, m.generation) for m in best] == [
        ("square6_2p", promoted["square6_2p"], 1),
        ("square8_2p", promoted["square8_2p"], 1),
    ]
    assert best[0].path == "models/square6_2p/g1" and best[0].status == C.MODEL_STATUS_PROMOTED
    only = await registry.best_models(["square8_2p", "hex8_3p"])
    assert [m.model_id for m in only] == [promoted["square8_2p"]]
    # Archiving the best hands the config to its newest other promoted model (self-play
    # keeps its strongest player), never to an archived one; with none left, no best.
    await registry.set_model_status(promoted["square6_2p"], C.MODEL_STATUS_ARCHIVED, "broken", 0)
    best = {m.config_key: m.model_id for m in await registry.best_models([])}
    assert best == {"square6_2p": first["square6_2p"], "square8_2p": promoted["square8_2p"]}
    events = await state.list_events(0, EventFilter(types=frozenset({C.EVENT_TYPE_MODEL_ARCHIVED})), 10)
    assert events[-1].event.attributes["best_now"] == first["square6_2p"]
    await registry.set_model_status(first["square6_2p"], C.MODEL_STATUS_ARCHIVED, "broken too", 0)
    assert [m.config_key for m in await registry.best_models([])] == ["square8_2p"]


async def test_matches_are_idempotent_per_batch_and_ratings_keep_history(stores) -> None:
    registry, _ = stores
    result = C.MatchResult(config_key="hex8_3p", player_a="m1", player_b="random", wins=30, losses=8, draws=2)
    assert await registry.record_matches([result, result], "gauntlet-job-1", 0) == 2
    assert await registry.record_matches([result], "gauntlet-job-1", 0) == 0
    assert len(await registry.list_matches("hex8_3p")) == 2 and await registry.list_matches("hex8_2p") == []
    await registry.put_ratings("hex8_3p", [C.Rating(player="m1", elo=1250), C.Rating(player="random", elo=1000)], 0)
    await registry.put_ratings("hex8_3p", [C.Rating(player="m1", elo=1300), C.Rating(player="random", elo=1000)], 0)
    latest = {r.player: r.elo for r in await registry.list_ratings("hex8_3p", False)}
    assert latest == {"m1": 1300, "random": 1000}
    assert len(await registry.list_ratings("hex8_3p", True)) == 4


async def test_rating_history_keeps_the_newest_fits_of_each_config(stores) -> None:
    registry, _ = stores
    kept = SqlRegistry(registry._db, rating_fits_kept=3)
    for fit in range(1, 8):
        await kept.put_ratings("square8_2p", [C.Rating(player="m", elo=1000 + fit), C.Rating(player="r", elo=1000)], 0)
    await kept.put_ratings("square6_2p", [C.Rating(player="m", elo=900)], 0)
    history = await kept.list_ratings("square8_2p", True)
    assert sorted({r.elo for r in history if r.player == "m"}) == [1005, 1006, 1007] and len(history) == 6
    latest = await kept.list_ratings("", False)
    assert {(r.config_key, r.player, r.elo) for r in latest} == {
        ("square8_2p", "m", 1007), ("square8_2p", "r", 1000), ("square6_2p", "m", 900)
    }  # fmt: skip


async def test_config_stats_accumulate_once_per_key(stores) -> None:
    registry, _ = stores
    await registry.update_config_stats(
        S.UpdateConfigStatsRequest(config_key="square8_2p", add_games=40, idempotency_key="j1")
    )
    await registry.update_config_stats(
        S.UpdateConfigStatsRequest(config_key="square8_2p", add_games=40, idempotency_key="j1")
    )
    stats = await registry.update_config_stats(
        S.UpdateConfigStatsRequest(config_key="square8_2p", add_games=10, mark_dispatch=True)
    )
    assert (stats.games_total, stats.games_since_training) == (50, 50) and stats.last_dispatch.seconds > 0
    stats = await registry.update_config_stats(
        S.UpdateConfigStatsRequest(config_key="square8_2p", mark_training_started=True)
    )
    assert (stats.games_total, stats.games_since_training) == (50, 0)
    assert [s.config_key for s in await registry.list_config_stats()] == ["square8_2p"]


async def test_config_stats_keep_the_cpu_cost_of_the_games_whose_cost_is_known(stores) -> None:
    registry, _ = stores
    for key, games, cpu in (("j1", 40, 80.0), ("j1", 40, 80.0), ("j2", 20, 0.0), ("j3", 10, 40.0)):
        stats = await registry.update_config_stats(
            S.UpdateConfigStatsRequest(
                config_key="square8_2p", add_games=games, add_cpu_seconds=cpu, idempotency_key=key
            )
        )
    # j1 once; j2's 20 games count but cost nothing known, so they stay out of the ratio.
    assert (stats.games_total, stats.selfplay_games_timed, stats.selfplay_cpu_seconds) == (70, 50, 120.0)
    assert stats.cpu_seconds_per_game == 2.4
    (listed,) = await registry.list_config_stats()
    assert listed.cpu_seconds_per_game == 2.4


async def test_sync_transfers_upsert_and_page(stores) -> None:
    registry, _ = stores
    transfers = [S.SyncTransfer(transfer_id=f"t{i}", plan_id="p1", state=S.TRANSFER_STATE_PLANNED) for i in range(5)]
    await registry.record_transfers(transfers, 0)
    await registry.record_transfers(
        [S.SyncTransfer(transfer_id="t1", plan_id="p1", state=S.TRANSFER_STATE_COMPLETED, bytes_done=9)], 0
    )
    done, _ = await registry.list_transfers("p1", [S.TRANSFER_STATE_COMPLETED], 10, "")
    assert [(t.transfer_id, t.bytes_done) for t in done] == [("t1", 9)]
    page1, token = await registry.list_transfers("p1", [], 3, "")
    page2, end = await registry.list_transfers("p1", [], 3, token)
    assert [t.transfer_id for t in page1 + page2] == [f"t{i}" for i in range(5)] and end == ""


async def test_registry_writes_are_fenced(stores) -> None:
    registry, state = stores
    await claim_until(state, 5)
    with pytest.raises(StaleEpoch):
        await registry.record_matches([C.MatchResult(config_key="square8_2p", player_a="a", player_b="b")], "", 4)
    with pytest.raises(StaleEpoch):
        await registry.put_ratings("square8_2p", [C.Rating(player="a")], 4)
    assert await registry.list_matches("square8_2p") == [] and await registry.list_ratings("", False) == []
