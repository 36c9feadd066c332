"""The training pipeline end to end on this machine: etcd, StateService, the five
managers, a leading gateway running the pipeline loops, and three agents (declared A100
trainer, declared RTX 4090 and a CPU-only node) playing the reference workload. Within
the time limit at least two configs reach two promoted generations, their ratings rise,
the event log tells the story from self-play to promotion, every model records where its
games came from, and a rollback moves a config's best back with self-play following it.

Not in the default run (it takes 3–11 minutes of both cores: a second generation is
promoted only when the GSPRT finds it stronger, which at the demo's amounts may take a few
candidates): `./scripts/test.sh -m pipeline`; `.ci/run` runs it after the default suite."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest

from ringrift.common.v1 import common_pb2 as C
from ringrift.state.v1 import state_pb2, state_pb2_grpc
from ringrift.training.v1 import training_pb2 as T
from ringrift.training.v1 import training_pb2_grpc
from ringrift_agent.adapters.catalog import DEFAULT_CATALOG
from ringrift_cli.local_cluster import DEMO_ENV
from tests.integration.cluster.conftest import LocalCluster
from tests.integration.cluster.test_jobs_end_to_end import A100, CPU, RTX4090

log = logging.getLogger("test.pipeline")
LIMIT_SECONDS = 15 * 60
REFERENCE_CATALOG = str(DEFAULT_CATALOG)  # the built-in catalog: the reference workload
PIPELINE = {**DEMO_ENV, "RINGRIFT_GATEWAY__PIPELINE_LOOPS": "true"}


async def start(cluster: LocalCluster) -> None:
    await cluster.start(
        "state", "state", RINGRIFT_STATE__DATABASE_URL=f"sqlite+aiosqlite:///{cluster.root / 'state.db'}", **PIPELINE
    )
    cluster.state = cluster.processes["state"]
    for manager in ("nodes", "sync", "jobs", "selfplay", "training"):
        await cluster.start(manager, manager, **PIPELINE)
    await cluster.start("gateway", "gateway", **PIPELINE)
    await cluster.start_agent("gpu-a100", RINGRIFT_AGENT__TEMPLATES_FILE=REFERENCE_CATALOG, **A100, **PIPELINE)
    await cluster.start_agent("gpu-4090", RINGRIFT_AGENT__TEMPLATES_FILE=REFERENCE_CATALOG, **RTX4090, **PIPELINE)
    await cluster.start_agent("cpu-only", RINGRIFT_AGENT__TEMPLATES_FILE=REFERENCE_CATALOG, **CPU, **PIPELINE)


async def promoted_generations(state) -> dict[str, list[C.Model]]:
    reply = await state.ListModels(
        state_pb2.ListModelsRequest(statuses=[C.MODEL_STATUS_PROMOTED], page=C.PageRequest(page_size=1000)), timeout=10
    )
    found: dict[str, list[C.Model]] = {}
    for model in reply.models:
        found.setdefault(model.config_key, []).append(model)
    return {k: sorted(v, key=lambda m: m.generation) for k, v in found.items()}


@pytest.mark.pipeline
@pytest.mark.timeout(LIMIT_SECONDS + 300)
async def test_two_configs_reach_two_promoted_generations_and_their_ratings_rise(cluster: LocalCluster):
    started = time.monotonic()
    await start(cluster)
    channel = cluster.channel("state")
    state = state_pb2_grpc.StateServiceStub(channel)
    while True:
        promoted = await promoted_generations(state)
        done = [k for k, models in promoted.items() if len(models) >= 2]
        if len(done) >= 2:
            break
        elapsed = time.monotonic() - started
        assert elapsed < LIMIT_SECONDS, f"after {elapsed:.0f} s promoted: { {k: len(v) for k, v in promoted.items()} }"
        await asyncio.sleep(5)
    log.info("two configs with two promoted generations after %.0f s", time.monotonic() - started)

    training = training_pb2_grpc.TrainingCoordinatorServiceStub(cluster.channel("training"))
    epoch = (await cluster.epoch()).epoch
    for config in done[:2]:
        models = promoted[config][:2]
        assert [m.generation for m in models] == [1, 2] and models[1].parent_model_id == models[0].model_id
        for model in models:  # lineage: the training file, and the self-play jobs and nodes of its games
            assert model.training_files and model.training_files[0].startswith(f"training/{config}/")
            assert model.game_sources and sum(s.games for s in model.game_sources) == model.training_games
            assert {s.node_id for s in model.game_sources} <= {"gpu-a100", "gpu-4090", "cpu-only"}
        ratings = {
            r.player: r.elo
            for r in (
                await training.FitRatings(T.FitRatingsRequest(config_key=config, epoch=epoch), timeout=30)
            ).ratings
        }
        assert ratings[models[1].model_id] > ratings[models[0].model_id] > ratings["random"], ratings
        # A run's stage is saved last, after its model reads as promoted and the model is
        # moved to the self-play nodes: the run of the newest model may still be finishing.
        deadline = time.monotonic() + 60
        while True:
            runs = (await training.ListTrainingRuns(T.ListTrainingRunsRequest(config_key=config), timeout=10)).runs
            promoted_runs = {r.candidate_model_id for r in runs if r.stage == T.TRAINING_STAGE_PROMOTED}
            if promoted_runs >= {m.model_id for m in models} or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        assert promoted_runs >= {m.model_id for m in models}
        if config.endswith("_2p"):
            gauntlet = await training.RunPostTrainingGauntlet(
                T.RunPostTrainingGauntletRequest(model_id=models[1].model_id, epoch=epoch), timeout=10
            )
            scores = {r.opponent: r.win_rate for r in gauntlet.results}
            assert gauntlet.decision == T.GAUNTLET_DECISION_PROMOTE
            assert scores["random"] >= 0.85 and scores["heuristic"] >= 0.85  # generation 0 scores about 0.25

    # The story of each promoted generation, in order: self-play, training, evaluation,
    # promotion, ratings; games synced to the trainer before training, the model synced
    # to the players after promotion.
    story = [
        C.EVENT_TYPE_JOB_SUCCEEDED,
        C.EVENT_TYPE_TRAINING_STARTED,
        C.EVENT_TYPE_TRAINING_COMPLETED,
        C.EVENT_TYPE_EVALUATION_COMPLETED,
        C.EVENT_TYPE_MODEL_PROMOTED,
        C.EVENT_TYPE_RATINGS_UPDATED,
    ]
    for config in done[:2]:
        events = [
            e
            for e in await cluster.events([*story, C.EVENT_TYPE_SYNC_STARTED, C.EVENT_TYPE_SYNC_COMPLETED])
            if e.config_key == config
        ]
        promotions = [e for e in events if e.type == C.EVENT_TYPE_MODEL_PROMOTED]
        names = [C.EventType.Name(e.type) for e in events]
        for promotion in promotions[:2]:
            before = [e.type for e in events if e.sequence <= promotion.sequence]
            last = [max(i for i, t in enumerate(before) if t == kind) for kind in story[1:5]]
            assert last == sorted(last) and before.index(story[0]) < last[0], names
            assert any(e.type == C.EVENT_TYPE_RATINGS_UPDATED and e.sequence > promotion.sequence for e in events)
        second_training = next(
            e for e in events if e.type == C.EVENT_TYPE_TRAINING_STARTED and e.sequence > promotions[0].sequence
        )
        assert any(e.type == C.EVENT_TYPE_SYNC_COMPLETED and promotions[0].sequence < e.sequence for e in events), names
        assert second_training.sequence < promotions[1].sequence

    # The gateway's facade over the pipeline: allocation, sync status, and a training
    # request that the leader carries out.
    from ringrift.orchestrator.v1 import orchestrator_pb2 as O
    from ringrift_client import FailedPrecondition, InvalidArgument
    from tests.callers import gateway_client

    gateway = gateway_client(cluster.pki, cluster.processes["gateway"].address)  # as users call it
    terms = (await gateway.explain_allocation(node_id="cpu-only", timeout=10)).terms
    assert {t.config_key for t in terms} == set(json.loads(DEMO_ENV["RINGRIFT_PIPELINE__CONFIGS"]))
    # Agents measured the self-play jobs' CPU time; the game counter stored what a game
    # of each trained config costs, and the allocation weighs it.
    by_config = {t.config_key: t for t in terms}
    assert all(by_config[key].cpu_seconds_per_game > 0 for key in done), terms
    assert all(0.33 <= t.cost_factor <= 3.0 for t in terms), terms
    synced = await gateway.get_sync_status(timeout=10)
    assert any(t.state == state_pb2.TRANSFER_STATE_COMPLETED for t in synced.transfers)
    with pytest.raises(InvalidArgument) as named:
        await gateway.trigger_training(config_key="square19_2p", timeout=10)
    assert "config_key" in named.value.fields
    accepted = await gateway.trigger_training(config_key=done[0], force=True, timeout=10)
    assert accepted.accepted
    # A forced request waits for a run of the config in progress: 120 s from when none is.
    in_progress = (T.TRAINING_STAGE_EXPORTING, T.TRAINING_STAGE_TRAINING, T.TRAINING_STAGE_EVALUATING)
    deadline = time.monotonic() + 120
    while not any(
        e.config_key == done[0] and e.attributes.get("forced") == "true"
        for e in await cluster.events([C.EVENT_TYPE_TRAINING_STARTED])
    ):
        runs = (await training.ListTrainingRuns(T.ListTrainingRunsRequest(config_key=done[0]), timeout=10)).runs
        if any(r.stage in in_progress for r in runs):
            deadline = max(deadline, time.monotonic() + 120)
        assert time.monotonic() < deadline, "the requested training never started"
        await asyncio.sleep(1)

    # An operator rolls the config back to its first promoted model: the later ones are
    # archived, the registry's best is generation 1 again, and self-play follows it.
    first = promoted[done[0]][0]
    with pytest.raises(FailedPrecondition) as refused:
        await gateway.rollback_model(config_key=done[0], to_model_id="no-such-model", timeout=30)
    assert "not a promoted model" in refused.value.message
    rolled = await gateway.rollback_model(
        O.RollbackModelRequest(config_key=done[0], to_model_id=first.model_id, reason="pipeline test"), timeout=30
    )
    rolled_at = time.time()
    assert rolled.best.model_id == first.model_id and promoted[done[0]][1].model_id in rolled.archived_model_ids
    best = await state.GetBestModels(state_pb2.GetBestModelsRequest(config_keys=[done[0]]), timeout=10)
    assert [m.model_id for m in best.models] == [first.model_id]
    page = C.PageRequest(page_size=1000)
    deadline = time.monotonic() + 180
    while True:  # a self-play job queued after the rollback (a round already under way may finish first)
        listed = await gateway.list_jobs(O.ListJobsRequest(kind="selfplay", config_key=done[0], page=page), timeout=10)
        fresh = [j for j in listed.jobs if j.created_at.seconds > rolled_at + 10]
        if fresh:
            assert all(j.spec.params["model"] == first.path for j in fresh), [dict(j.spec.params) for j in fresh]
            break
        assert time.monotonic() < deadline, "no self-play job of the config after the rollback"
        await asyncio.sleep(2)
    await gateway.close()
