"""The coordinator's run through its stages, on fakes of its ports: idempotent triggers,
the reservation released in every outcome, retries on another node, fail-closed
evaluation, and a second replica continuing a run from the stored events."""

from __future__ import annotations

import asyncio
import itertools
from types import SimpleNamespace

import pytest

from ringrift_runtime.errors import WrongState
from ringrift_settings import PipelineSettings, TrainingSettings
from ringrift_training.domain.coordinator import Coordinator
from ringrift_training.domain.runs import Job, ModelRef, Stage
from ringrift_training.domain.stages import Ports

CONFIG = "square8_2p"
SETTINGS = TrainingSettings(demo_min_games=100, demo_incremental_games=50, demo_cooldown_seconds=0)
PIPELINE = PipelineSettings(configs=[CONFIG], profile="demo")
GOOD = {
    "opponents": {"random": {"wins": 95, "losses": 5, "draws": 0}, "heuristic": {"wins": 90, "losses": 10, "draws": 0}}
}


class FakeState:
    def __init__(self):
        self.events: list[tuple[int, dict]] = []
        self.keys: dict[str, SimpleNamespace] = {}
        self.published: list[tuple[str, str]] = []
        self.models: dict[str, SimpleNamespace] = {}
        self.best: ModelRef | None = None
        self.matches_stored: dict[str, list] = {}
        self.ratings_put = 0
        self.rated: set[str] = set()
        self.rated_when_promoted: dict[str, bool] = {}
        self.games = 200
        self.now = 1_000_000.0  # the time events are recorded at
        self.timed: list[tuple[str, str, float]] = []  # (type, subject, time) of every event published

    async def event_times(self, event_type, subject):
        return [t for kind, about, t in self.timed if (kind, about) == (event_type, subject)]

    async def run_events(self, after):
        new = [(s, a) for s, a in self.events if s > after]
        return new, (new[-1][0] if new else after)

    async def publish(self, event_type, subject, config_key, attributes, epoch, key):
        if key in self.keys:
            return self.keys[key]
        event = SimpleNamespace(subject=subject, type=event_type)
        self.keys[key] = event
        self.published.append((event_type, subject))
        self.timed.append((event_type, subject, self.now))
        if event_type == "TRAINING_STAGE_CHANGED":
            self.events.append((len(self.events) + 1, dict(attributes)))
        return event

    async def save_run(self, run, epoch, key):
        await self.publish("TRAINING_STAGE_CHANGED", run.run_id, run.config_key, run.attributes(), epoch, key)

    async def stats(self):
        return {
            CONFIG: SimpleNamespace(
                games_total=self.games, games_since_training=self.games, HasField=lambda name: False
            )
        }

    async def mark(self, config_key, epoch, key, started=False, completed=False):
        pass

    async def best_model(self, config_key):
        return self.best

    async def register(self, ref, parent, job_id, games, epoch, lineage=None):
        self.models[ref.model_id] = SimpleNamespace(ref=ref, status="CANDIDATE", lineage=lineage)

    async def set_status(self, model_id, status, reason, epoch):
        self.models[model_id].status = status
        if status == "PROMOTED":
            self.rated_when_promoted[model_id] = model_id in self.rated
            self.best = self.models[model_id].ref
        if status in ("ARCHIVED", "REJECTED") and self.best is not None and self.best.model_id == model_id:
            others = [m.ref for m in self.models.values() if m.status == "PROMOTED"]  # as the registry falls back
            self.best = max(others, key=lambda ref: ref.generation, default=None)

    async def promoted_models(self, config_key):
        return [m.ref for m in self.models.values() if m.status == "PROMOTED" and m.ref.config_key == config_key]

    async def record_matches(self, config_key, results, key, epoch):
        self.matches_stored.setdefault(key, list(results))

    async def matches(self, config_key):
        return [m for batch in self.matches_stored.values() for m in batch]

    async def put_ratings(self, config_key, fitted, epoch):
        self.ratings_put += 1
        self.rated |= {f.player for f in fitted}
        return fitted


class FakeJobs:
    def __init__(self):
        self.by_key: dict[str, str] = {}
        self.jobs: dict[str, dict] = {}
        self.ids = (f"J{i}" for i in itertools.count(1))

    async def submit(self, kind, config_key, params, node_id, key):
        if key not in self.by_key:
            job_id = next(self.ids)
            self.by_key[key] = job_id
            self.jobs[job_id] = dict(kind=kind, params=params, node=node_id, state="active", result={}, error="")
        return self.by_key[key]

    async def get(self, job_id):
        j = self.jobs[job_id]
        return Job(job_id, j["state"], j["result"], j["error"])

    def finish(self, kind, state="succeeded", result=None, error=""):
        for job in self.jobs.values():
            if job["kind"] == kind and job["state"] == "active":
                job.update(state=state, result=result or {}, error=error)
                return job
        raise AssertionError(f"no active {kind} job")

    def active(self, kind):
        return [j for j in self.jobs.values() if j["kind"] == kind and j["state"] == "active"]

    async def nodes_of(self, job_ids):
        return {j: f"node-of-{j}" for j in job_ids if j.startswith("selfplay-")}


class FakeNodes:
    def __init__(self, trainers=("t1", "t2")):
        self.trainers = list(trainers)
        self.reserved: dict[str, str] = {}
        self.quarantined: dict[str, str] = {}

    async def best_trainer(self, config_key, prefer, exclude):
        return next((n for n in self.trainers if n not in exclude), None)

    async def reserve(self, node_id, holder, ttl, epoch):
        if self.reserved.get(node_id, holder) != holder:
            raise WrongState(f"{node_id} is reserved")
        self.reserved[node_id] = holder

    async def release(self, node_id, holder, epoch):
        if self.reserved.get(node_id) == holder:
            del self.reserved[node_id]

    async def gpu_trainers(self):
        return len(self.trainers)

    async def quarantine(self, node_id, reason):
        self.quarantined[node_id] = reason


class FakeSync:
    def __init__(self):
        self.moves = []

    async def game_holders(self, config_key):
        return []

    async def move(self, goal, config_key, targets, epoch, sha=""):
        self.moves.append((goal, tuple(targets)))
        return 1, 0


class FakeScheduler:
    def __init__(self):
        self.outcomes = []

    async def record_outcome(self, config_key, win_rate, promoted, job_id, epoch):
        self.outcomes.append((round(win_rate, 2), promoted))


def make(state=None, jobs=None, nodes=None, clock=lambda: 1_000_000.0):
    ports = Ports(state or FakeState(), jobs or FakeJobs(), nodes or FakeNodes(), FakeSync(), FakeScheduler())
    return Coordinator(SETTINGS, PIPELINE, ports, clock=clock, poll_seconds=0.01), ports


async def until(predicate, timeout=5.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


def stage(coordinator, run_id):
    return coordinator.runs[run_id].stage


async def to_evaluation(c, ports, run_id):
    await until(lambda: ports.jobs.active("export"))
    ports.jobs.finish("export")
    await until(lambda: ports.jobs.active("train"))
    ports.jobs.finish("train", result={"path": "models/x.npz", "sha256": "a" * 64, "training_games": 200})
    await until(lambda: stage(c, run_id) is Stage.EVALUATING and ports.jobs.active("gauntlet"))


async def test_a_first_model_goes_through_every_stage_and_the_node_is_released():
    c, ports = make()
    started, run, _ = await c.trigger(CONFIG, False, epoch=3)
    assert started and run.stage is Stage.EXPORTING
    await to_evaluation(c, ports, run.run_id)
    assert ports.nodes.reserved == {}  # released once training is done
    train = next(j for j in ports.jobs.jobs.values() if j["kind"] == "train")
    assert train["params"]["parent"] == "" and train["params"]["checkpoint"].startswith("checkpoints/square8_2p/")
    assert [g for g, _ in ports.sync.moves] == ["games"]  # no parent model to ship yet
    ports.jobs.finish("gauntlet", result=GOOD)
    await until(lambda: c.runs[run.run_id].finished)
    final = c.runs[run.run_id]
    assert final.stage is Stage.PROMOTED and ports.state.models[final.candidate_model_id].status == "PROMOTED"
    assert ports.scheduler.outcomes == [(0.9, True)] and ports.state.ratings_put == 1
    # Whoever reads the model as promoted finds its rating already stored.
    assert ports.state.rated_when_promoted == {final.candidate_model_id: True}
    assert ("models", ()) in ports.sync.moves  # the promoted model goes to the players


async def test_triggers_are_idempotent_per_games_bucket_and_window():
    c, ports = make()
    first = await c.trigger(CONFIG, False, epoch=3)
    second = await c.trigger(CONFIG, False, epoch=3)
    assert first[0] and not second[0] and second[1].run_id == first[1].run_id
    await to_evaluation(c, ports, first[1].run_id)
    ports.jobs.finish("gauntlet", result=GOOD)
    await until(lambda: c.runs[first[1].run_id].finished)
    third = await c.trigger(CONFIG, False, epoch=3)  # same bucket, same 15 minutes
    assert not third[0] and third[1].run_id == first[1].run_id and "already triggered" in third[2]
    assert len([p for p in ports.state.published if p[0] == "TRAINING_STARTED"]) == 1


async def test_not_ready_means_no_run():
    state = FakeState()
    state.games = 20
    c, _ = make(state)
    started, run, reason = await c.trigger(CONFIG, False, epoch=3)
    assert not started and run is None and "needs 100" in reason
    assert (await c.trigger(CONFIG, True, epoch=3))[0]  # an operator may force it


async def test_an_export_failure_moves_to_another_node_and_releases_the_first():
    c, ports = make()
    _, run, _ = await c.trigger(CONFIG, False, epoch=3)
    await until(lambda: ports.jobs.active("export"))
    assert ports.nodes.reserved == {"t1": run.run_id}
    ports.jobs.finish("export", state="failed", error="disk full")
    await until(lambda: ports.nodes.reserved == {"t2": run.run_id})
    assert ports.jobs.active("export")[0]["node"] == "t2"


async def test_a_failed_training_fails_the_run_and_releases_the_node():
    c, ports = make()
    _, run, _ = await c.trigger(CONFIG, False, epoch=3)
    await until(lambda: ports.jobs.active("export"))
    ports.jobs.finish("export")
    await until(lambda: ports.jobs.active("train"))
    ports.jobs.finish("train", state="failed", error="CUDA out of memory")
    await until(lambda: c.runs[run.run_id].finished)
    assert stage(c, run.run_id) is Stage.FAILED and "CUDA out of memory" in c.runs[run.run_id].reason
    assert ports.nodes.reserved == {} and ("TRAINING_FAILED", run.run_id) in ports.state.published


@pytest.mark.parametrize(
    "outcome",
    [
        dict(state="failed", error="agent lost"),
        dict(
            result={
                "opponents": {
                    "random": {"wins": 0, "losses": 0, "draws": 0},
                    "heuristic": {"wins": 0, "losses": 0, "draws": 0},
                }
            }
        ),
        dict(result={}),
    ],
)
async def test_an_evaluation_that_errors_or_plays_no_games_never_promotes(outcome):
    c, ports = make()
    _, run, _ = await c.trigger(CONFIG, False, epoch=3)
    await to_evaluation(c, ports, run.run_id)
    ports.jobs.finish("gauntlet", **outcome)
    await until(lambda: c.runs[run.run_id].finished)
    final = c.runs[run.run_id]
    assert final.stage is Stage.REJECTED and ports.state.models[final.candidate_model_id].status == "REJECTED"
    assert ports.state.best is None and ports.scheduler.outcomes[-1][1] is False


def _incumbent_result(units: list[int], incumbent: str = "square8_2p.g1.x") -> dict:
    """A 2p gauntlet job's result against the incumbent: its units, games and pairs."""
    wins = sum(u // 2 for u in units)  # a unit of 4 half points is two won games, of 3 one won and one drawn
    draws = sum(u % 2 for u in units)
    losses = 2 * len(units) - wins - draws
    counts = {"wins": wins, "losses": losses, "draws": draws}
    return {"opponents": {incumbent: {**counts, "pairwise": counts, "units": units}}}


async def test_a_candidate_plays_the_incumbent_until_the_gate_decides():
    state = FakeState()
    state.best = ModelRef("square8_2p.g1.x", CONFIG, 1, "models/square8_2p/g1.npz", "b" * 64)
    c, ports = make(state)
    _, run, _ = await c.trigger(CONFIG, False, epoch=3)
    await to_evaluation(c, ports, run.run_id)
    gauntlets = ports.jobs.active("gauntlet")
    assert sorted(j["params"].get("baselines") for j in gauntlets) == ["none", "random,heuristic"]
    first = next(j for j in gauntlets if j["params"]["baselines"] == "none")
    assert first["params"]["games"] == SETTINGS.gauntlet_batch_games and first["params"]["opening_offset"] == 0
    assert ("models", ("t1",)) in ports.sync.moves  # the parent was shipped to the trainer
    ports.jobs.finish("gauntlet", result=GOOD)  # baselines
    ports.jobs.finish("gauntlet", result=_incumbent_result([2, 2, 3, 1] * 5))  # even so far: undecided
    await until(lambda: len(ports.jobs.active("gauntlet")) == 1)  # undecided: another batch
    second = ports.jobs.active("gauntlet")[0]
    assert second["params"]["opening_offset"] == 20  # the next openings of the book
    ports.jobs.finish("gauntlet", result=_incumbent_result([4, 4, 3, 4] * 5))
    await until(lambda: c.runs[run.run_id].finished)
    final = c.runs[run.run_id]
    assert final.stage is Stage.PROMOTED and len(final.units["square8_2p.g1.x"]) == 40
    assert "accepts H1" in final.reason and "after 56 games" in final.reason  # the crossing, not the batch end
    assert state.best.model_id == final.candidate_model_id and final.generation == 2


async def test_a_gauntlet_that_plays_no_games_against_the_incumbent_ends_the_run_rejected():
    state = FakeState()
    state.best = ModelRef("square8_2p.g1.x", CONFIG, 1, "models/square8_2p/g1.npz", "b" * 64)
    c, ports = make(state)
    _, run, _ = await c.trigger(CONFIG, False, epoch=3)
    await to_evaluation(c, ports, run.run_id)
    ports.jobs.finish("gauntlet", result=GOOD)
    ports.jobs.finish("gauntlet", result={"opponents": {}})  # the incumbent job played nothing
    await until(lambda: c.runs[run.run_id].finished)
    final = c.runs[run.run_id]
    assert final.stage is Stage.REJECTED and "played no games" in final.reason
    assert len([j for j in ports.jobs.jobs.values() if j["kind"] == "gauntlet"]) == 2  # nothing more submitted


async def test_another_replica_continues_a_run_from_the_stored_events():
    state, jobs, nodes = FakeState(), FakeJobs(), FakeNodes()
    first, _ = make(state, jobs, nodes)
    _, run, _ = await first.trigger(CONFIG, False, epoch=3)
    await until(lambda: jobs.active("export"))
    await first.stop()  # the replica dies while the export runs
    second, _ = make(state, jobs, nodes)
    started, found, reason = await second.trigger(CONFIG, False, epoch=4)
    assert not started and found.run_id == run.run_id and "in progress" in reason
    jobs.finish("export")
    await until(lambda: jobs.active("train"))
    assert second.runs[run.run_id].stage is Stage.TRAINING
    assert len([j for j in jobs.jobs.values() if j["kind"] == "export"]) == 1  # not exported twice
    await second.stop()


def test_reading_back_its_own_events_never_rewinds_a_run_being_driven():
    from ringrift_training.domain.runs import Run, fold

    runs: dict = {}
    saved = Run("r", CONFIG, Stage.EVALUATING, step=4)
    fold(runs, [(1, saved.attributes())])
    driven = runs["r"]
    driven.stage = Stage.PROMOTED  # decided, not saved yet
    fold(runs, [(1, saved.attributes())])  # a refresh reads the last saved step again
    assert runs["r"] is driven and runs["r"].stage is Stage.PROMOTED
    newer = Run("r", CONFIG, Stage.REJECTED, step=5)  # another replica moved on
    fold(runs, [(2, newer.attributes())])
    assert runs["r"].stage is Stage.REJECTED


async def test_a_malformed_run_event_is_skipped_reported_once_and_the_runs_after_it_still_read():
    from ringrift_runtime.skipped import SkippedRecords
    from ringrift_training.domain.runs import Run

    state = FakeState()
    reported: list[tuple[str, str, str]] = []

    async def report(kind: str, name: str, reason: str) -> None:
        reported.append((kind, name, reason))

    c = Coordinator(SETTINGS, PIPELINE, make(state)[1], skipped=SkippedRecords("training", report))
    good = Run("r-good", CONFIG, Stage.EVALUATING, step=2).attributes()
    state.events = [
        (1, {**good, "run_id": "r-bad", "tallies": "{not json"}),
        (2, {**good, "run_id": "r-stage", "stage": "no-such-stage"}),
        (3, {"step": "1"}),  # names no run
        (4, good),
    ]
    await c.refresh()
    assert set(c.runs) == {"r-good"}
    assert [(kind, name) for kind, name, _ in reported] == [
        ("run_event", "event 1"),
        ("run_event", "event 2"),
        ("run_event", "event 3"),
    ]
    assert "not a training run" in reported[0][2]
    assert c.skipped.counts == {"run_event": 3}
    state.events.append((5, {**good, "step": "3"}))
    await c.refresh()  # the loop goes on past them
    assert c.runs["r-good"].step == 3 and len(reported) == 3


async def test_a_run_announced_but_never_saved_is_adopted_by_the_next_trigger():
    state = FakeState()
    c, ports = make(state)
    key = f"{CONFIG}/0/{int(1_000_000.0 // SETTINGS.trigger_window_seconds)}"
    await state.publish("TRAINING_STARTED", "run-orphan", CONFIG, {}, 3, key)  # then the process died
    started, run, _ = await c.trigger(CONFIG, False, epoch=3)
    assert started and run.run_id == "run-orphan"
    await until(lambda: ports.jobs.active("export"))
    await c.stop()


async def test_baseline_games_count_toward_the_floors_and_their_pairwise_results_toward_the_ratings():
    """In 4p a model of random's strength wins a quarter of its games against three random
    players but half of its pairwise results: the floors read the first, the ratings the
    second (stored as "won against the field" it was rated 811 against random's 1000)."""
    from ringrift_training.domain.runs import Run
    from ringrift_training.domain.stages import _account

    state = FakeState()
    run = Run("r4", "square8_4p", Stage.EVALUATING, candidate_model_id="square8_4p.g1.r4")
    result = {
        "opponents": {
            "random": {
                "wins": 25,
                "losses": 75,
                "draws": 0,
                "pairwise": {"wins": 150, "losses": 150, "draws": 0},
                "units": [12] * 25,
            }
        }
    }
    played = await _account(SimpleNamespace(state=state), run, "baselines", "job-1", result, epoch=3)
    assert played == 0 and run.tallies["random"] == [25, 75, 0] and "random" not in run.units
    (match,) = state.matches_stored["gauntlet/job-1"]
    assert (match.player_a, match.player_b, match.wins, match.losses) == ("square8_4p.g1.r4", "random", 150, 150)


def _promoted_line(state: FakeState, generations: int) -> list[ModelRef]:
    refs = []
    for generation in range(1, generations + 1):
        ref = ModelRef(
            f"square8_2p.g{generation}.x", CONFIG, generation, f"models/square8_2p/g{generation}.npz", "c" * 64
        )
        state.models[ref.model_id] = SimpleNamespace(ref=ref, status="PROMOTED")
        refs.append(ref)
    state.best = refs[-1]
    return refs


async def test_rollback_moves_the_best_back_archives_the_later_line_and_ships_the_model():
    from ringrift_training.domain.stages import rollback

    state, sync = FakeState(), FakeSync()
    g1, g2, g3 = _promoted_line(state, 3)
    ports = SimpleNamespace(state=state, sync=sync)
    best, archived = await rollback(ports, CONFIG, "", "g3 plays worse in 4p", epoch=3)
    assert best == g2 and state.best == g2 and archived == [g3.model_id]
    assert state.models[g3.model_id].status == "ARCHIVED" and ("models", ()) in sync.moves
    best, archived = await rollback(ports, CONFIG, g1.model_id, "", epoch=3)
    assert best == g1 and archived == [g2.model_id] and state.best == g1
    for to, message in [
        ("", "no promoted model before"),
        (g1.model_id, "already the best"),
        ("nope", "not a promoted"),
    ]:
        with pytest.raises(WrongState, match=message):
            await rollback(ports, CONFIG, to, "", epoch=3)
    state.best = None
    with pytest.raises(WrongState, match="no best model"):
        await rollback(ports, CONFIG, "", "", epoch=3)


async def test_a_run_whose_parent_was_rolled_back_is_not_promoted():
    state = FakeState()
    g1, g2 = _promoted_line(state, 2)
    c, ports = make(state)
    _, run, _ = await c.trigger(CONFIG, False, epoch=3)
    await to_evaluation(c, ports, run.run_id)
    assert c.runs[run.run_id].parent_model_id == g2.model_id
    from ringrift_training.domain.stages import rollback

    await rollback(ports, CONFIG, "", "", epoch=3)  # the operator moves the best back to g1 meanwhile
    ports.jobs.finish("gauntlet", result=GOOD)
    ports.jobs.finish("gauntlet", result=_incumbent_result([4] * 20, g2.model_id))  # would have been promoted
    await until(lambda: c.runs[run.run_id].finished)
    final = c.runs[run.run_id]
    assert final.stage is Stage.REJECTED and "no longer the best" in final.reason and state.best == g1


async def test_the_registered_model_records_its_training_file_and_the_jobs_and_nodes_of_its_games():
    c, ports = make()
    _, run, _ = await c.trigger(CONFIG, False, epoch=3)
    await until(lambda: ports.jobs.active("export"))
    sources = [{"job_id": "selfplay-1", "games": 120, "skipped": 2}, {"job_id": "gone", "games": 80, "skipped": 0}]
    ports.jobs.finish("export", result={"games": 200, "sources": sources, "skipped_games": 2})
    await until(lambda: ports.jobs.active("train"))
    ports.jobs.finish("train", result={"path": "models/x.npz", "sha256": "a" * 64, "training_games": 200})
    await until(lambda: c.runs[run.run_id].stage is Stage.EVALUATING)
    lineage = ports.state.models[c.runs[run.run_id].candidate_model_id].lineage
    assert lineage.training_files == [f"training/{CONFIG}/{run.run_id}.npz"] and lineage.skipped_games == 2
    assert lineage.sources == [
        {"job_id": "selfplay-1", "games": 120, "skipped": 2, "node_id": "node-of-selfplay-1"},
        {"job_id": "gone", "games": 80, "skipped": 0, "node_id": ""},
    ]


async def test_a_node_whose_games_fail_their_checks_in_three_exports_within_a_day_is_quarantined():
    """Every export that skips a node's games is a strike against it (one event per run and
    node, whichever job of the node the games came from); the third within the window
    quarantines it. Strikes older than the window do not count; nodes with clean games
    are left alone."""
    state = FakeState()
    c, ports = make(state=state, clock=lambda: state.now)
    bad = {"job_id": "selfplay-bad", "games": 40, "skipped": 3}
    also_bad = {"job_id": "selfplay-bad2", "games": 10, "skipped": 1}  # node-of-... differs: another node
    clean = {"job_id": "selfplay-ok", "games": 50, "skipped": 0}

    async def export_run(now, sources, skipped_files=()):
        state.now = now
        started, run, _ = await c.trigger(CONFIG, True, epoch=3)
        assert started
        await until(lambda: ports.jobs.active("export"))
        ports.jobs.finish("export", result={"sources": sources, "skipped_files": list(skipped_files)})
        await until(lambda: ports.jobs.active("train"))
        ports.jobs.finish("train", state="failed", error="stop here")
        await until(lambda: c.runs[run.run_id].finished)
        return run

    await export_run(1_000_000.0 - 2 * 86400, [bad, clean])  # two days ago: out of the window
    malformed = {"job_id": "selfplay-weird", "games": 1, "skipped": "lots"}  # not a count: no strike, no failure
    await export_run(1_000_000.0 - 3600, [bad, also_bad, clean, malformed])
    assert ports.nodes.quarantined == {}
    await export_run(1_000_000.0 - 60, [clean], skipped_files=["selfplay-bad.db"])  # an unreadable file counts
    assert ports.nodes.quarantined == {}  # two strikes within the day
    await export_run(1_000_000.0, [bad, clean])
    assert list(ports.nodes.quarantined) == ["node-of-selfplay-bad"]
    assert "3 exports skipped its games" in ports.nodes.quarantined["node-of-selfplay-bad"]
    strikes = [s for kind, s in state.published if kind == "NODE_GAMES_REJECTED"]
    assert strikes.count("node-of-selfplay-bad") == 4 and strikes.count("node-of-selfplay-bad2") == 1
    assert "node-of-selfplay-ok" not in strikes and "node-of-selfplay-weird" not in strikes


@pytest.mark.parametrize(("config", "units"), [("square8_2p", 200 + 20), ("square8_4p", 100 + 10)])
def test_a_run_at_the_gauntlet_cap_still_fits_in_its_stage_event(config, units):
    """A run is saved as event attributes, each at most StateService's limit: the units of a
    gauntlet at its cap (plus a batch) fit; the lineage is read from the export job instead."""
    from ringrift_state.api.mapping import MAX_ATTRIBUTE_VALUE
    from ringrift_training.domain.gauntlet import grid
    from ringrift_training.domain.runs import Run

    players = int(config[-2])
    parent = f"{config}.g41.01jh8m0d3w6x9y2z5a7b4c1e0f"
    run = Run("run-01jh8m0d3w6x9y2z5a7b4c1e0f", config, Stage.EVALUATING, parent_model_id=parent)
    run.units[parent] = [grid(players)] * units
    run.tallies = {parent: [10**6] * 3, "random": [10**6] * 3, "heuristic": [10**6] * 3}
    run.gauntlet_jobs = [f"incumbent:01jh8m0d3w6x9y2z5a7b4c1e{i:02d}" for i in range(12)]
    run.accounted_jobs = list(run.gauntlet_jobs)
    assert max(len(v) for v in run.attributes().values()) <= MAX_ATTRIBUTE_VALUE
