"""One step of a training run at a time. Every step is safe to repeat: jobs are submitted
with idempotency keys derived from the run, matches are recorded with the gauntlet job id
as key, and the run is saved after each stage change."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ringrift_contracts.ids import parse_config_key
from ringrift_runtime.errors import Conflict, NotFound, RingriftError, WrongState
from ringrift_settings import TrainingSettings
from ringrift_training.domain.gauntlet import Decision, GateRule, Tally, decide, grid
from ringrift_training.domain.ratings import Result, fit
from ringrift_training.domain.runs import Lineage, ModelRef, Run, Stage

log = logging.getLogger("ringrift.training")

TRAINING_STARTED = "TRAINING_STARTED"
GAMES, MODELS = "games", "models"


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
    await ports.state.publish(
        "TRAINING_FAILED", run.run_id, run.config_key, {"reason": reason[:500]}, epoch, f"{run.run_id}/failed"
    )
    await ports.state.mark(run.config_key, epoch, f"{run.run_id}/completed", completed=True)
    await save(ports, run, epoch)
    log.info("run %s failed: %s", run.run_id, reason)


async def step(ports: Ports, settings: TrainingSettings, run: Run, epoch: int, clock: Callable[[], float]) -> bool:
    """Advance the run by one transition; True when it is waiting for a job."""
    if run.stage is Stage.EXPORTING:
        return await _exporting(ports, settings, run, epoch, clock)
    if run.stage is Stage.TRAINING:
        return await _training(ports, run, epoch, clock)
    if run.stage is Stage.EVALUATING:
        return await _evaluating(ports, settings, run, epoch, clock)
    return False


async def _dispatch(ports: Ports, settings: TrainingSettings, run: Run, epoch: int, clock: Callable[[], float]) -> bool:
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
        "export",
        run.config_key,
        {"window": settings.export_window_games, "output": f"training/{run.config_key}/{run.run_id}.npz"},
        node,
        f"{run.run_id}/export/{node}",
    )
    await save(ports, run, epoch)
    return False


async def _exporting(
    ports: Ports, settings: TrainingSettings, run: Run, epoch: int, clock: Callable[[], float]
) -> bool:
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
    await strike_bad_sources(ports, settings, run, job.result, epoch, clock)  # idempotent if this step repeats
    best = await ports.state.best_model(run.config_key)
    run.generation = best.generation + 1 if best else 1
    run.parent_model_id, run.parent_path = (best.model_id, best.path) if best else ("", "")
    run.candidate_model_id = f"{run.config_key}.g{run.generation}.{run.run_id[-8:]}"
    run.candidate_path = f"models/{run.config_key}/{run.candidate_model_id}.npz"
    run.training_job_id = await ports.jobs.submit(
        "train",
        run.config_key,
        {
            "training_file": f"training/{run.config_key}/{run.run_id}.npz",
            "parent": run.parent_path,
            "output": run.candidate_path,
            "generation": run.generation,
            "epochs": settings.epochs,
            "seed": seed_of(run.run_id),
            "checkpoint": f"checkpoints/{run.config_key}/{run.run_id}.npz",
        },
        run.node_id,
        f"{run.run_id}/train",
    )
    run.stage = Stage.TRAINING
    await save(ports, run, epoch)
    return False


async def _training(ports: Ports, run: Run, epoch: int, clock: Callable[[], float]) -> bool:
    job = await ports.jobs.get(run.training_job_id)
    if job.state == "active":
        return True
    if job.state != "succeeded":
        await fail(ports, run, epoch, f"training {job.state}: {job.error}", clock)
        return False
    await handle_completion(ports, run, job.result, epoch)
    return False


async def handle_completion(ports: Ports, run: Run, result: dict[str, Any], epoch: int) -> None:
    """Register the candidate, release the node, record the completion, start evaluating."""
    candidate = ModelRef(
        run.candidate_model_id,
        run.config_key,
        run.generation,
        result.get("path", run.candidate_path),
        result.get("sha256", ""),
        run.node_id,
    )
    lineage = await _lineage(ports, run, await _export_result(ports, run))
    await ports.state.register(
        candidate, run.parent_model_id, run.training_job_id, _count(result.get("training_games")), epoch, lineage
    )
    await release(ports, run, epoch)
    await ports.state.publish(
        "TRAINING_COMPLETED",
        run.run_id,
        run.config_key,
        {
            "model_id": run.candidate_model_id,
            "generation": run.generation,
            "node": run.node_id,
            "training_games": result.get("training_games", 0),
            "resumed_from_epoch": result.get("resumed_from_epoch", 0),
        },
        epoch,
        f"{run.run_id}/completed",
    )
    await ports.state.mark(run.config_key, epoch, f"{run.run_id}/completed", completed=True)
    run.stage = Stage.EVALUATING
    await save(ports, run, epoch)


async def _export_result(ports: Ports, run: Run) -> dict[str, Any]:
    """The export job's result (not kept in the run: a run is saved as event attributes
    of bounded size); {} when the job is gone (archived since)."""
    try:
        return (await ports.jobs.get(run.export_job_id)).result if run.export_job_id else {}
    except NotFound:
        return {}


async def strike_bad_sources(
    ports: Ports,
    settings: TrainingSettings,
    run: Run,
    export: dict[str, Any],
    epoch: int,
    clock: Callable[[], float],
) -> list[str]:
    """A strike against every node whose games this run's export skipped (games that
    failed their checks, a file that could not be read): a NODE_GAMES_REJECTED event,
    once per run and node. A node with ``quarantine_strikes`` strikes within the window
    is quarantined. The nodes quarantined now."""
    bad: dict[str, int] = {}
    for source in export.get("sources") or []:
        skipped = _count(source.get("skipped")) if isinstance(source, dict) else 0
        if skipped:
            job_id = str(source.get("job_id", ""))[:64]
            bad[job_id] = bad.get(job_id, 0) + skipped
    for name in export.get("skipped_files") or []:
        if isinstance(name, str) and name.endswith(".db"):
            job_id = name[: -len(".db")][:64]
            bad[job_id] = bad.get(job_id, 0) + 1  # an unreadable file: at least one game lost
    if not bad or not settings.quarantine_strikes:
        return []
    nodes = await ports.jobs.nodes_of(sorted(bad))
    per_node: dict[str, int] = {}
    for job_id, games in bad.items():
        if nodes.get(job_id):
            per_node[nodes[job_id]] = per_node.get(nodes[job_id], 0) + games
    quarantined = []
    for node_id, games in sorted(per_node.items()):
        attributes = {"games": games, "run_id": run.run_id}
        await ports.state.publish(
            "NODE_GAMES_REJECTED", node_id, run.config_key, attributes, epoch, f"{run.run_id}/rejected/{node_id}"
        )
        since = clock() - settings.quarantine_window_seconds
        strikes = [t for t in await ports.state.event_times("NODE_GAMES_REJECTED", node_id) if t >= since]
        if len(strikes) >= settings.quarantine_strikes:
            reason = f"{len(strikes)} exports skipped its games within {settings.quarantine_window_seconds / 3600:g} h"
            try:
                await ports.nodes.quarantine(node_id, reason)
            except RingriftError as exc:  # the strikes stay recorded: the next one quarantines it
                log.warning("node %s not quarantined (%s): %s", node_id, reason, exc)
                continue
            quarantined.append(node_id)
            log.warning("node %s quarantined: %s", node_id, reason)
    return quarantined


def _count(value: Any) -> int:
    """A count a job reported; 0 when it is not a whole number of at least 0."""
    try:
        return max(0, int(value or 0))
    except (TypeError, ValueError):
        return 0


async def _lineage(ports: Ports, run: Run, export: dict[str, Any]) -> Lineage:
    """What the candidate was trained from, read from the export job's result: the
    training file, and per self-play job of its games the node that ran it."""
    sources = [
        {"job_id": str(s.get("job_id", ""))[:64], "games": _count(s.get("games")), "skipped": _count(s.get("skipped"))}
        for s in (export.get("sources") or [])[:100_000]
        if isinstance(s, dict)
    ]
    nodes = await ports.jobs.nodes_of([s["job_id"] for s in sources])
    return Lineage(
        [f"training/{run.config_key}/{run.run_id}.npz"],
        [{**s, "node_id": nodes.get(s["job_id"], "")} for s in sources],
        _count(export.get("skipped_games")),
    )


def floors(settings: TrainingSettings, config_key: str) -> dict[str, float]:
    players = parse_config_key(config_key).players
    floors = settings.baseline_floors.get(players) or (0.0,) * len(settings.baselines)
    return dict(zip(settings.baselines, floors, strict=True))


def gate_rule(settings: TrainingSettings) -> GateRule:
    elo0, elo1 = settings.sprt_elo0, settings.sprt_elo1
    if settings.gauntlet_mode == "nonregression":
        elo0, elo1 = -settings.nonregression_elo, -settings.nonregression_elo + (elo1 - elo0)
    return GateRule(
        elo0, elo1, settings.sprt_alpha, settings.sprt_beta, settings.gauntlet_min_units, settings.gauntlet_max_games
    )


def players_of(run: Run) -> int:
    return parse_config_key(run.config_key).players


def baseline_tallies(run: Run, names: list[str]) -> dict[str, Tally]:
    return {name: Tally(*run.tallies[name]) for name in names if name in run.tallies}


def incumbent_units(run: Run) -> list[int] | None:
    """Unit totals against the incumbent in the order played; None for a first model."""
    if not run.parent_model_id:
        return None
    return list(run.units.get(run.parent_model_id, []))


def incumbent_score(run: Run) -> float | None:
    units = incumbent_units(run)
    if not units:
        return None
    return sum(units) / (grid(players_of(run)) * len(units))


async def _submit_gauntlet(ports: Ports, settings: TrainingSettings, run: Run, purpose: str, units: int) -> None:
    """A gauntlet job of ``units`` openings, each played from every seat. Against the
    incumbent every job takes the next openings of the book, so no opening is played twice
    from one seat within a gauntlet."""
    players = players_of(run)
    params: dict[str, Any] = {
        "candidate": run.candidate_path,
        "games": units * players,
        "seed": seed_of(f"{run.run_id}/{len(run.gauntlet_jobs)}"),
    }
    if purpose == "incumbent":
        params.update(
            incumbent=run.parent_path,
            incumbent_name=run.parent_model_id,
            baselines="none",
            opening_offset=run.units_requested,
        )
        run.units_requested += units
    else:
        params.update(baselines=",".join(settings.baselines), opening_offset=0)
    job_id = await ports.jobs.submit(
        "gauntlet", run.config_key, params, run.node_id, f"{run.run_id}/gauntlet/{len(run.gauntlet_jobs)}"
    )
    run.gauntlet_jobs.append(f"{purpose}:{job_id}")


def _batch_units(settings: TrainingSettings, run: Run) -> int:
    players = players_of(run)
    cap = gate_rule(settings).max_units(players)
    return max(1, min(settings.gauntlet_batch_games // players, cap - run.units_requested))


async def _evaluating(
    ports: Ports, settings: TrainingSettings, run: Run, epoch: int, clock: Callable[[], float]
) -> bool:
    if not run.gauntlet_jobs:
        players = players_of(run)
        await _submit_gauntlet(ports, settings, run, "baselines", max(1, settings.gauntlet_baseline_games // players))
        if run.parent_model_id:
            await _submit_gauntlet(ports, settings, run, "incumbent", _batch_units(settings, run))
        await save(ports, run, epoch)
        return False
    waiting = False
    for entry in [e for e in run.gauntlet_jobs if e not in run.accounted_jobs]:
        purpose, job_id = entry.split(":", 1)
        job = await ports.jobs.get(job_id)
        if job.state == "active":
            waiting = True
            continue
        failure = f"gauntlet job {job_id} {job.state}: {job.error or 'no result'}"
        if job.state == "succeeded":
            played = await _account(ports, run, purpose, job_id, job.result, epoch)
            # Liveness: a job that plays nothing against the incumbent would be asked again forever.
            failure = "" if purpose != "incumbent" or played else f"gauntlet job {job_id} played no games"
        if failure:
            await _finish(ports, settings, run, epoch, clock, Decision.REJECT, f"evaluation failed: {failure}")
            return False
    if waiting:
        return True
    units = incumbent_units(run)
    verdict = decide(
        units,
        players_of(run),
        baseline_tallies(run, settings.baselines),
        floors(settings, run.config_key),
        gate_rule(settings),
    )
    if verdict.decision is Decision.CONTINUE:
        await _submit_gauntlet(ports, settings, run, "incumbent", _batch_units(settings, run))
        await save(ports, run, epoch)
        return False
    await _finish(ports, settings, run, epoch, clock, verdict.decision, verdict.reason)
    return False


def _counts(outcome: dict[str, Any], key: str) -> tuple[int, int, int]:
    counts = outcome.get(key)
    if not isinstance(counts, dict):
        return 0, 0, 0
    return _count(counts.get("wins")), _count(counts.get("losses")), _count(counts.get("draws"))


async def _account(ports: Ports, run: Run, purpose: str, job_id: str, result: dict[str, Any], epoch: int) -> int:
    """Add a gauntlet job's results to the run and store them as matches; the units it
    played against the incumbent. Games won count toward the floors (win rates); the
    pairwise results (the candidate ahead of, level with, behind each opponent of a game)
    are the matches the ratings are fitted from, for every player count; the unit totals
    against the incumbent feed the gate."""
    opponents = result.get("opponents") or {}
    limit = grid(players_of(run))
    matches, played = [], 0
    for name, outcome in opponents.items() if isinstance(opponents, dict) else ():
        if not isinstance(outcome, dict):  # a malformed entry is no games played
            continue
        w, l, d = _counts({"games": outcome}, "games")
        total = run.tallies.setdefault(name, [0, 0, 0])
        run.tallies[name] = [total[0] + w, total[1] + l, total[2] + d]
        pw, pl, pd = _counts(outcome, "pairwise")
        matches.append(Result(run.candidate_model_id, name, pw, pl, pd))
        if purpose == "incumbent" and name == run.parent_model_id:
            # A malformed unit is not a unit played (a job of nothing but those ends the run rejected).
            units = [u for u in outcome.get("units") or [] if isinstance(u, int) and 0 <= u <= limit]
            run.units.setdefault(name, []).extend(units)
            played += len(units)
    if matches:
        await ports.state.record_matches(run.config_key, matches, f"gauntlet/{job_id}", epoch)
    run.accounted_jobs.append(f"{purpose}:{job_id}")
    await save(ports, run, epoch)
    return played


async def _finish(
    ports: Ports,
    settings: TrainingSettings,
    run: Run,
    epoch: int,
    clock: Callable[[], float],
    decision: Decision,
    reason: str,
) -> None:
    """Promote or reject; every side effect is idempotent, the stage is saved last."""
    if decision is Decision.PROMOTE and run.parent_model_id:
        best = await ports.state.best_model(run.config_key)
        if best is None or best.model_id != run.parent_model_id:  # rolled back while the run went on
            decision = Decision.REJECT
            reason = f"{reason}; not promoted: its parent {run.parent_model_id} is no longer the best (rollback)"
    promoted = decision is Decision.PROMOTE
    strongest = baseline_tallies(run, settings.baselines).get(settings.baselines[-1], Tally())
    score = incumbent_score(run)
    reference = score if score is not None else strongest.score
    # The evaluation's outcome (EVALUATION_COMPLETED) first, then the verdict (MODEL_PROMOTED/REJECTED).
    await ports.scheduler.record_outcome(run.config_key, reference, promoted, run.run_id, epoch)
    # Ratings before the verdict: a model that reads as promoted already has its rating.
    await fit_ratings(ports, settings, run.config_key, epoch)
    await ports.state.set_status(run.candidate_model_id, "PROMOTED" if promoted else "REJECTED", reason, epoch)
    if promoted:
        try:
            await ports.sync.move(MODELS, run.config_key, [], epoch)  # the config's best: this model
        except RingriftError as exc:  # DataSync catches up; self-play falls back to the models it holds
            log.warning("run %s: model distribution incomplete: %s", run.run_id, exc)
    run.stage = Stage.PROMOTED if promoted else Stage.REJECTED
    run.reason, run.finished_at = reason, clock()
    await save(ports, run, epoch)
    log.info("run %s: %s %s (%s)", run.run_id, run.stage.value, run.candidate_model_id, reason)


async def fit_ratings(ports: Ports, settings: TrainingSettings, config_key: str, epoch: int) -> list[Any]:
    """Ratings of every player of the config fitted from all its matches, stored; the
    stored ratings."""
    results = await ports.state.matches(config_key)
    if not results:
        return []
    stored: list[Any] = await ports.state.put_ratings(
        config_key, fit(results, settings.rating_anchor, settings.rating_anchor_elo), epoch
    )
    return stored


async def rollback(
    ports: Ports, config_key: str, to_model_id: str, reason: str, epoch: int
) -> tuple[ModelRef, list[str]]:
    """Make an earlier promoted model the config's best: the target is promoted again
    (the best pointer moves to it), then the current best and every promoted model of a
    later generation are archived, and the new best is shipped to the nodes. The new best
    and the archived model ids."""
    best = await ports.state.best_model(config_key)
    if best is None:
        raise WrongState(f"{config_key} has no best model to roll back from")
    promoted = {m.model_id: m for m in await ports.state.promoted_models(config_key)}
    if to_model_id:
        target = promoted.get(to_model_id)
        if target is None:
            raise WrongState(f"{to_model_id[:80]} is not a promoted model of {config_key}")
        if target.model_id == best.model_id:
            raise WrongState(f"{to_model_id[:80]} is already the best model of {config_key}")
    else:
        earlier = [m for m in promoted.values() if m.generation < best.generation]
        if not earlier:
            raise WrongState(f"{config_key} has no promoted model before {best.model_id}")
        target = max(earlier, key=lambda m: (m.generation, m.model_id))
    why = reason or "operator rollback"
    await ports.state.set_status(target.model_id, "PROMOTED", f"rolled back to from {best.model_id}: {why}", epoch)
    abandoned = sorted(
        (m for m in promoted.values() if m.model_id != target.model_id and m.generation >= target.generation),
        key=lambda m: (m.generation, m.model_id),
    )
    for model in abandoned:
        await ports.state.set_status(model.model_id, "ARCHIVED", f"rolled back to {target.model_id}: {why}", epoch)
    try:
        await ports.sync.move(MODELS, config_key, [], epoch)  # the config's best: the target
    except RingriftError as exc:  # DataSync catches up; the nodes holding the target use it at once
        log.warning("rollback of %s: model distribution incomplete: %s", config_key, exc)
    log.info("rollback of %s to %s; archived %s", config_key, target.model_id, [m.model_id for m in abandoned])
    return target, [m.model_id for m in abandoned]
