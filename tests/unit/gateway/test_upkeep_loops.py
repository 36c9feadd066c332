"""The upkeep loops against hand-worked cases: idle and zombie nodes (15 s / 600 s, 120 s
cooldown), autoscaling decisions (pending per node > 10 adds min(needed, 3), idle nodes
are removed but never below the minimum), validation gauntlets only for promoted models
without baseline games (at most 3 a round, results stored as matches), data sync going on
past one config's failure, the command provider running real scripts, and the
single-flight status cache."""

from __future__ import annotations

import asyncio
import stat
from types import SimpleNamespace

import pytest

from ringrift_gateway.adapters.scaling import CommandProvider
from ringrift_gateway.domain.loops.data_sync import DataSync
from ringrift_gateway.domain.loops.idle import IdleRules, IdleTracker
from ringrift_gateway.domain.loops.scaling import AutoScaling, ScalingRules, decide_scaling
from ringrift_gateway.domain.loops.validation import Validation
from ringrift_runtime.aio import SingleFlight
from ringrift_runtime.errors import DependencyUnavailable, RingriftError, StaleEpoch
from ringrift_settings import GatewaySettings


def idle_rules(**fields) -> IdleRules:
    return IdleRules.of(GatewaySettings(**fields))


def scaling_rules(**fields) -> ScalingRules:
    return ScalingRules.of(GatewaySettings(**{f"autoscaling_{k}": v for k, v in fields.items()}))


def test_an_idle_node_is_fed_after_15_s_and_not_again_within_the_cooldown() -> None:
    tracker = IdleTracker(idle_rules())
    nodes = {"cpu": (False, 0.0), "gpu": (True, 80.0)}
    assert tracker.observe(nodes, {"gpu": 2}, now=0).feed == []  # cpu idle since 0
    assert tracker.observe(nodes, {"gpu": 2}, now=14.9).feed == []
    assert tracker.observe(nodes, {"gpu": 2}, now=15).feed == ["cpu"]
    assert tracker.observe(nodes, {"gpu": 2}, now=100).feed == []  # cooldown 120 s
    assert tracker.observe(nodes, {"gpu": 2}, now=134).feed == []  # idle again since 100... and cooling down
    assert tracker.observe(nodes, {"gpu": 2}, now=135.1).feed == ["cpu"]
    # A node that got work in between starts its idle clock again.
    tracker = IdleTracker(idle_rules())
    tracker.observe({"cpu": (False, 0.0)}, {}, now=0)
    tracker.observe({"cpu": (False, 0.0)}, {"cpu": 1}, now=10)
    assert tracker.observe({"cpu": (False, 0.0)}, {}, now=20).feed == []
    assert tracker.observe({"cpu": (False, 0.0)}, {}, now=35).feed == ["cpu"]


def test_a_gpu_below_10_percent_is_idle_and_below_5_percent_with_jobs_for_600_s_is_a_zombie() -> None:
    tracker = IdleTracker(idle_rules(idle_cooldown_seconds=0))
    busy_low = {"g": (True, 8.0)}
    tracker.observe(busy_low, {"g": 3}, now=0)
    assert tracker.observe(busy_low, {"g": 3}, now=15).feed == ["g"]  # GPU < 10 % counts as idle
    tracker = IdleTracker(idle_rules(idle_seconds=10_000))
    zombie = {"g": (True, 2.0)}
    tracker.observe(zombie, {"g": 3}, now=0)
    assert tracker.observe(zombie, {"g": 3}, now=599).restart == []
    verdict = tracker.observe(zombie, {"g": 3}, now=600)
    assert verdict.restart == ["g"] and verdict.feed == []
    assert tracker.observe({"g": (False, 0.0)}, {"g": 3}, now=700).restart == []  # CPU nodes are never zombies


@pytest.mark.parametrize(
    ("pending", "nodes", "idle", "add", "remove"),
    [
        (30, 3, [], 0, []),  # exactly 10 per node: not more than 10
        (31, 3, [], 1, []),  # 10.3 per node: needed ceil(31/10)-3 = 1
        (100, 3, [], 3, []),  # needed 7, at most 3 per round
        (100, 7, [], 1, []),  # needed 3, but the maximum is 8 nodes
        (100, 8, ["auto-1"], 0, []),  # at the maximum: nothing to add, and busy: nothing removed
        (0, 4, ["auto-2", "auto-1"], 0, ["auto-1", "auto-2"]),
        (0, 2, ["auto-2", "auto-1"], 0, ["auto-1"]),  # never below the minimum of 1
        (0, 1, ["auto-1"], 0, []),
        (5, 0, [], 1, []),  # no node at all and work waiting
    ],
)
def test_scaling_decisions(pending, nodes, idle, add, remove) -> None:
    decision = decide_scaling(scaling_rules(min_nodes=1, max_nodes=8), pending, nodes, idle)
    assert (decision.add, decision.remove) == (add, remove)


class FakeProvider:
    name = "fake"

    def __init__(self) -> None:
        self.added: list[int] = []
        self.removed: list[str] = []

    def manages(self, node_id: str) -> bool:
        return node_id.startswith("auto-")

    async def add(self, count: int) -> list[str]:
        self.added.append(count)
        return [f"auto-{i}" for i in range(count)]

    async def remove(self, node_id: str) -> None:
        self.removed.append(node_id)


class FakeMembers:
    def __init__(self, names) -> None:
        self.names = names

    def values(self):
        return {n: SimpleNamespace(draining=False, quarantined=False) for n in self.names}


async def test_autoscaling_acts_through_the_provider_then_cools_down() -> None:
    clock = {"now": 0.0}
    client = SimpleNamespace(pending=50)

    async def pending_jobs():
        return client.pending

    async def active_jobs_by_node(kind=""):
        return {"node-1": 3}

    provider = FakeProvider()
    loop = AutoScaling(
        SimpleNamespace(pending_jobs=pending_jobs),
        SimpleNamespace(active_jobs_by_node=active_jobs_by_node),
        FakeMembers(["node-1", "auto-1"]),
        provider,
        scaling_rules(idle_seconds=3600, cooldown_seconds=600),
        clock=lambda: clock["now"],
    )
    decision = await loop(1)
    assert decision.add == 3 and provider.added == [3]  # 25 per node, needed 3
    clock["now"] = 300
    assert (await loop(1)).reason.endswith("(cooling down)") and provider.added == [3]
    client.pending = 0
    clock["now"] = 700
    assert (await loop(1)).remove == []  # auto-1 first seen at 0: idle for 700 s only
    clock["now"] = 3601
    decision = await loop(1)
    assert decision.remove == ["auto-1"] and provider.removed == ["auto-1"]  # node-1 has jobs; not managed anyway
    # No provider: the decision is reported, nothing is done.
    idle = AutoScaling(
        SimpleNamespace(pending_jobs=pending_jobs),
        SimpleNamespace(active_jobs_by_node=active_jobs_by_node),
        FakeMembers(["node-1"]),
        None,
        scaling_rules(),
    )
    client.pending = 500
    assert (await idle(1)).add == 3


class FakeValidationClient:
    def __init__(self, models, games, jobs) -> None:
        self.models, self.games, self.jobs = models, games, jobs
        self.submitted: list[str] = []
        self.recorded: list[tuple] = []

    async def promoted_models(self):
        return self.models

    async def baseline_games(self, config_key):
        return self.games.get(config_key, {})

    async def submit_validation(self, model, baselines, games, key):
        assert key == f"validation/{model.model_id}" and games == 50 and baselines == ["random", "heuristic"]
        self.submitted.append(model.model_id)
        return f"job-{model.model_id}"

    async def job_outcome(self, job_id):
        return self.jobs.get(job_id, ("PENDING", {}))

    async def record_matches(self, config_key, model_id, opponents, key, epoch):
        self.recorded.append((model_id, opponents, key, epoch))
        return len(opponents)


def model(model_id, config="square8_2p", generation=1):
    return SimpleNamespace(model_id=model_id, config_key=config, generation=generation)


async def test_validation_queues_only_models_without_baseline_games_at_most_three_a_round() -> None:
    models = [model(f"m{i}", generation=i) for i in range(1, 8)]
    games = {"square8_2p": {"m1": {"random": 100, "heuristic": 100}, "m2": {"random": 100, "heuristic": 10}}}
    result = {
        "opponents": {
            "random": {"wins": 48, "losses": 2, "draws": 0},
            "heuristic": {"wins": 30, "losses": 20, "draws": 0},
            "incumbent": {"wins": 1},
        }
    }
    client = FakeValidationClient(models, games, {"job-m2": ("SUCCEEDED", result), "job-m3": ("FAILED", {})})
    outcome = await Validation(client, client, ["random", "heuristic"], games=50, per_cycle=3)(epoch=4)
    assert "m1" not in outcome  # already validated by its training gauntlet
    assert outcome["m2"] == "validated" and outcome["m3"] == "failed"
    assert [o for o in outcome.values()].count("queued") == 3 and outcome["m7"] == "waiting"
    assert client.recorded == [
        ("m2", {k: v for k, v in result["opponents"].items() if k != "incumbent"}, "validation/job-m2", 4)
    ]


async def test_data_sync_goes_on_past_a_failing_config_and_reports_it() -> None:
    moved = []

    async def move(goal, config, epoch):
        if config == "square6_2p" and goal == "games":
            raise DependencyUnavailable("trainer unreachable")
        moved.append((goal, config))
        return 2, 0

    async def best():
        return {"square8_2p": "models/square8_2p/a.npz"}

    with pytest.raises(DependencyUnavailable, match="games of square6_2p"):
        await DataSync(
            SimpleNamespace(move=move), SimpleNamespace(best_model_paths=best), ["square6_2p", "square8_2p"]
        )(1)
    assert moved == [("games", "square8_2p"), ("models", "square8_2p")]

    async def stale(goal, config, epoch):
        raise StaleEpoch(1, 2)

    with pytest.raises(StaleEpoch):  # a stale epoch ends the term, it is not just a failed config
        await DataSync(SimpleNamespace(move=stale), SimpleNamespace(best_model_paths=best), ["square8_2p"])(1)


async def test_the_command_provider_runs_the_operators_scripts(tmp_path) -> None:
    up = tmp_path / "up.sh"
    up.write_text('#!/bin/sh\nfor i in $(seq 1 "$1"); do echo "cloud-$i"; done\n')
    down = tmp_path / "down.sh"
    down.write_text(f'#!/bin/sh\necho "$1" >> {tmp_path}/removed\n')
    broken = tmp_path / "broken.sh"
    broken.write_text('#!/bin/sh\necho "quota exceeded" >&2\nexit 3\n')
    for script in (up, down, broken):
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
    provider = CommandProvider(f"{up}", f"{down}")
    assert await provider.add(2) == ["cloud-1", "cloud-2"]
    await provider.remove("cloud-1")
    assert (tmp_path / "removed").read_text() == "cloud-1\n"
    with pytest.raises(DependencyUnavailable, match="exited with 3: quota exceeded"):
        await CommandProvider(str(broken), "").add(1)
    with pytest.raises(DependencyUnavailable, match="no scale-down command"):
        await CommandProvider(str(up), "").remove("x")


async def test_twenty_concurrent_status_requests_cost_one_computation() -> None:
    started = asyncio.Event()
    release = asyncio.Event()

    async def compute():
        started.set()
        await release.wait()
        return {"status": "ok"}

    flight = SingleFlight(compute, ttl=1.0)
    waiters = [asyncio.create_task(flight.get()) for _ in range(20)]
    await started.wait()
    release.set()
    assert [await w for w in waiters] == [{"status": "ok"}] * 20
    assert flight.computations == 1
    assert await flight.get() == {"status": "ok"} and flight.computations == 1  # cached within the ttl

    failures = {"n": 0}

    async def failing():
        failures["n"] += 1
        raise RingriftError("down")

    broken = SingleFlight(failing, ttl=10.0)
    for _ in range(2):
        with pytest.raises(RingriftError):
            await broken.get()
    assert failures["n"] == 2  # a failure is not cached
