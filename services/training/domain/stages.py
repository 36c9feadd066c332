"""One step of a training run at a time. Every step is safe to repeat: jobs are submitted
with idempotency keys derived from the run, matches are recorded with the gauntlet job id
as key, and the run is saved after each stage change."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any, Callable

from ringrift_runtime.errors import Conflict, NotFound, RingriftError, WrongState
from ringrift_runtime.pipeline_settings import TrainingSettings
from ringrift_runtime.validation import parse_config_key
from ringrift_training.domain.gauntlet import Decision, SprtRule, Tally, decide
from ringrift_training.domain.ratings import Result, fit
from ringrift_training.domain.runs import ModelRef, Run, Stage

log = logging.getLogger("ringrift.training")

TRAINING_STARTED = "TRAINING_STARTED"
GAMES, MODELS = "games", "models"
BASELINES = ("random", "heuristic")


@dataclass
class Ports:
    state: Any  # adapters.clients.State
    jobs: Any  # adapters.clients.Jobs
    nodes: Any  # adapters.clients.Nodes
    sync: Any  # adapters.clients.Sync
    scheduler: Any  # adapters.clients.Scheduler


def seed_of(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")


async def save(ports: Ports, run: Run, epoch: int) -> None:
    run.step += 1
    await ports.state.save_run(run, epoch, f"{run.run_id}/{run.step}")


async def release(ports: Ports, run: Run, epoch: int) -> None:
    if not run.node_id:
        return
    try:
        await ports.nodes.release(run.node_id, run.run_id, epoch)
    except NotFound:
        pass


async def fail(ports: Ports, run: Run, epoch: int, reason: str, clock: Callable[[], float]) -> None:
    try:
        await release(ports, run, epoch)
    except RingriftError as exc:  # the reservation expires by itself within its TTL
        log.warning("run %s: reservation on %s not released: %s", run.run_id, run.node_id, exc)
    run.stage, run.reason, run.finished_at = Stage.FAILED, reason, clock()
    await ports.state.publish("TRAINING_FAILED", run.run_id, run.config_key, {"reason": reason[:500]}, epoch,
                              f"{run.run_id}/failed")
    await ports.state.mark(run.config_key, epoch, f"{run.run_id}/completed", completed=True)
    await save(ports, run, epoch)
    log.info("run %s failed: %s", run.run_id, reason)


async def step(ports: Ports, settings: TrainingSettings, run: Run, epoch: int, clock) -> bool:
    """Advance the run by one transition; True when it is waiting for a job."""
    if run.stage is Stage.EXPORTING:
        return await _exporting(ports, settings, run, epoch, clock)
    if run.stage is Stage.TRAINING:
        return await _training(ports, run, epoch, clock)
    if run.stage is Stage.EVALUATING:
        return await _evaluating(ports, settings, run, epoch, clock)
    return False


async def _dispatch(ports: Ports, settings: TrainingSettings, run: Run, epoch: int, clock) -> bool:
    """The best training node, preferring the ones holding the config's games; reserved
    for training; games and the parent model synced to it; then the export job."""
    if not run.node_id:
        holders = await ports.sync.game_holders(run.config_key)
        node = await ports.nodes.best_trainer(run.config_key, holders, run.tried_nodes)
        if node is None:
            await fail(ports, run, epoch, f"no training node available (tried {run.tried_nodes or 'none'})", clock)
            return False
        try:
            await ports.nodes.reserve(node, run.run_id, settings.reservation_seconds, epoch)
        except (Conflict, WrongState) as exc:  # another run trains there: wait for it
            log.info("run %s waits for %s: %s", run.run_id, node, exc)
            return True
        run.node_id = node
        run.tried_nodes.append(node)
        await save(ports, run, epoch)  # from here on the reservation is released in every outcome
    node = run.node_id
    await ports.sync.move(GAMES, run.config_key, [node], epoch)
    best = await ports.state.best_model(run.config_key)
    if best is not None:
        await ports.sync.move(MODELS, run.config_key, [node], epoch, best.sha256)
    run.export_job_id = await ports.jobs.submit(
        "export", run.config_key,
        {"window": settings.export_window_games, "output": f"training/{run.config_key}/{run.run_id}.npz"},
        node, f"{run.run_id}/export/{node}",
    )
    await save(ports, run, epoch)
    return False


async def _exporting(ports: Ports, settings: TrainingSettings, run: Run, epoch: int, clock) -> bool:
    if not run.export_job_id:
        return await _dispatch(ports, settings, run, epoch, clock)
    job = await ports.jobs.get(run.export_job_id)
    if job.state == "active":
        return True
    if job.state != "succeeded":
        await release(ports, run, epoch)
        if len(run.tried_nodes) < settings.max_dispatch_nodes:
            log.info("run %s: export on %s %s (%s); trying another node", run.run_id, run.node_id, job.state, job.error)
            run.export_job_id, run.node_id = "", ""
            await save(ports, run, epoch)
            return False
        await fail(ports, run, epoch, f"export {job.state} on {run.tried_nodes}: {job.error}", clock)
        return False
    best = await ports.state.best_model(run.config_key)
    run.generation = best.generation + 1 if best else 1
    run.parent_model_id, run.parent_path = (best.model_id, best.path) if best else ("", "")
    run.candidate_model_id = f"{run.config_key}.g{run.generation}.{run.run_id[-8:]}"
    run.candidate_path = f"models/{run.config_key}/{run.candidate_model_id}.npz"
    run.training_job_id = await ports.jobs.submit(
        "train", run.config_key,
        {
            "training_file": f"training/{run.config_key}/{run.run_id}.npz", "parent": run.parent_path,
            "output": run.candidate_path, "generation": run.generation, "epochs": settings.epochs,
            "seed": seed_of(run.run_id), "checkpoint": f"checkpoints/{run.config_key}/{run.run_id}.npz",
        },
        run.node_id, f"{run.run_id}/train",
    )
    run.stage = Stage.TRAINING
    await save(ports, run, epoch)
    return False


async def _training(ports: Ports, run: Run, epoch: int, clock) -> bool:
    job = await ports.jobs.get(run.training_job_id)
    if job.state == "active":
        return True
    if job.state != "succeeded":
        await fail(ports, run, epoch, f"training {job.state}: {job.error}", clock)
        return False
    await handle_completion(ports, run, job.result, epoch)
    return False


async def handle_completion(ports: Ports, run: Run, result: dict, epoch: int) -> None:
    """Register the candidate, release the node, record the completion, start evaluating."""
    candidate = ModelRef(run.candidate_model_id, run.config_key, run.generation,
                         result.get("path", run.candidate_path), result.get("sha256", ""), run.node_id)
    await ports.state.register(candidate, run.parent_model_id, run.training_job_id,
                               int(result.get("training_games", 0)), epoch)
    await release(ports, run, epoch)
    await ports.state.publish(
        "TRAINING_COMPLETED", run.run_id, run.config_key,
        {"model_id": run.candidate_model_id, "generation": run.generation, "node": run.node_id,
         "training_games": result.get("training_games", 0), "resumed_from_epoch": result.get("resumed_from_epoch", 0)},
        epoch, f"{run.run_id}/completed",
    )
    await ports.state.mark(run.config_key, epoch, f"{run.run_id}/completed", completed=True)
    run.stage = Stage.EVALUATING
    await save(ports, run, epoch)


def floors(settings: TrainingSettings, config_key: str) -> dict[str, float]:
    players = parse_config_key(config_key).players
    vs_random, vs_heuristic = settings.baseline_floors.get(players, (0.0, 0.0))
    return {"random": vs_random, "heuristic": vs_heuristic}


def rule(settings: TrainingSettings) -> SprtRule:
    return SprtRule(settings.sprt_elo0, settings.sprt_elo1, settings.sprt_alpha, settings.sprt_beta,
                    settings.gauntlet_min_games, settings.gauntlet_max_games, settings.final_min_win_rate,
                    settings.final_min_los)


def tallies(run: Run) -> tuple[Tally | None, dict[str, Tally]]:
    baselines = {name: Tally(*run.tallies[name]) for name in BASELINES if name in run.tallies}
    incumbent = Tally(*run.tallies[run.parent_model_id]) if run.parent_model_id else None
    if run.parent_model_id and run.parent_model_id not in run.tallies:
        incumbent = Tally()
    return incumbent, baselines


async def _submit_gauntlet(ports: Ports, settings: TrainingSettings, run: Run, purpose: str, games: int) -> None:
    params = {"candidate": run.candidate_path, "games": games,
              "seed": seed_of(f"{run.run_id}/{len(run.gauntlet_jobs)}")}
    if purpose == "incumbent":
        params.update(incumbent=run.parent_path, incumbent_name=run.parent_model_id, baselines="none")
    else:
        params.update(baselines=",".join(BASELINES))
    job_id = await ports.jobs.submit("gauntlet", run.config_key, params, run.node_id,
                                     f"{run.run_id}/gauntlet/{len(run.gauntlet_jobs)}")
    run.gauntlet_jobs.append(f"{purpose}:{job_id}")


async def _evaluating(ports: Ports, settings: TrainingSettings, run: Run, epoch: int, clock) -> bool:
    if not run.gauntlet_jobs:
        await _submit_gauntlet(ports, settings, run, "baselines", settings.gauntlet_baseline_games)
        if run.parent_model_id:
            await _submit_gauntlet(ports, settings, run, "incumbent", settings.gauntlet_batch_games)
        await save(ports, run, epoch)
        return False
    waiting = False
    for entry in [e for e in run.gauntlet_jobs if e not in run.accounted_jobs]:
        purpose, job_id = entry.split(":", 1)
        job = await ports.jobs.get(job_id)
        if job.state == "active":
            waiting = True
            continue
        if job.state != "succeeded":
            await _finish(ports, settings, run, epoch, clock, Decision.REJECT,
                          f"evaluation failed: gauntlet job {job_id} {job.state}: {job.error or 'no result'}")
            return False
        await _account(ports, run, purpose, job_id, job.result, epoch)
    if waiting:
        return True
    incumbent, baselines = tallies(run)
    verdict = decide(incumbent, baselines, floors(settings, run.config_key), rule(settings))
    if verdict.decision is Decision.CONTINUE:
        remaining = settings.gauntlet_max_games - (incumbent.games if incumbent else 0)
        await _submit_gauntlet(ports, settings, run, "incumbent", max(1, min(settings.gauntlet_batch_games, remaining)))
        await save(ports, run, epoch)
        return False
    await _finish(ports, settings, run, epoch, clock, verdict.decision, verdict.reason)
    return False


async def _account(ports: Ports, run: Run, purpose: str, job_id: str, result: dict, epoch: int) -> None:
    """Add a gauntlet job's results to the run's tallies and store them as matches. For
    the incumbent the pairwise results count (even odds at equal strength for any player
    count); for the baselines, games won (the floors are win rates)."""
    opponents = result.get("opponents") or {}
    matches = []
    for name, outcome in opponents.items():
        counts = outcome.get("pairwise", outcome) if purpose == "incumbent" else outcome
        w, l, d = int(counts.get("wins", 0)), int(counts.get("losses", 0)), int(counts.get("draws", 0))
        total = run.tallies.setdefault(name, [0, 0, 0])
        run.tallies[name] = [total[0] + w, total[1] + l, total[2] + d]
        matches.append(Result(run.candidate_model_id, name, w, l, d))
    if matches:
        await ports.state.record_matches(run.config_key, matches, f"gauntlet/{job_id}", epoch)
    run.accounted_jobs.append(f"{purpose}:{job_id}")
    await save(ports, run, epoch)


async def _finish(ports: Ports, settings: TrainingSettings, run: Run, epoch: int, clock, decision: Decision, reason: str) -> None:
    """Promote or reject; every side effect is idempotent, the stage is saved last."""
    promoted = decision is Decision.PROMOTE
    incumbent, baselines = tallies(run)
    reference = incumbent if incumbent is not None and incumbent.games else baselines.get("heuristic", Tally())
    # The evaluation's outcome (EVALUATION_COMPLETED) first, then the verdict (MODEL_PROMOTED/REJECTED).
    await ports.scheduler.record_outcome(run.config_key, reference.score, promoted, run.run_id, epoch)
    await ports.state.set_status(run.candidate_model_id, "PROMOTED" if promoted else "REJECTED", reason, epoch)
    if promoted:
        try:
            await ports.sync.move(MODELS, run.config_key, [], epoch)  # the config's best: this model
        except RingriftError as exc:  # DataSync catches up; self-play falls back to the models it holds
            log.warning("run %s: model distribution incomplete: %s", run.run_id, exc)
    await fit_ratings(ports, settings, run.config_key, epoch)
    run.stage = Stage.PROMOTED if promoted else Stage.REJECTED
    run.reason, run.finished_at = reason, clock()
    await save(ports, run, epoch)
    log.info("run %s: %s %s (%s)", run.run_id, run.stage.value, run.candidate_model_id, reason)


async def fit_ratings(ports: Ports, settings: TrainingSettings, config_key: str, epoch: int) -> list:
    results = await ports.state.matches(config_key)
    if not results:
        return []
    return await ports.state.put_ratings(config_key, fit(results, settings.rating_anchor, settings.rating_anchor_elo), epoch)
