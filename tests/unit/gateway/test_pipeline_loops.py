"""The leader's pipeline loops on fakes: every self-play node is topped up to its target
(at most the per-cycle cap) with the scheduler's picks and the config's best model, and
game counting resumes from a stored cursor without counting a job twice."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from ringrift_gateway.domain.loops.games import GameCounter
from ringrift_gateway.domain.loops.queue import QueuePopulator
from ringrift_gateway.domain.loops.training import TrainingTrigger
from ringrift_gateway.domain.ports import EventView
from ringrift_settings.pipeline import SelfplaySettings


class FakeClient:
    def __init__(self):
        self.targets = {"a": 5, "b": 30, "c": 2}
        self.active = {"a": 2, "c": 2}
        self.submitted = []
        self.added = []
        self.finished = [("j1", "square8_2p", 50), ("j2", "square6_2p", 0), ("j3", "square8_2p", 40)]

    async def active_jobs_by_node(self, kind=""):
        assert kind == "selfplay"
        return dict(self.active)

    async def best_model_paths(self):
        return {"square8_2p": "models/square8_2p/g3.npz"}

    async def target(self, node_id):
        return self.targets[node_id]

    async def pick(self, node_id, seed):
        return "square8_2p" if node_id == "a" else "square6_2p"

    async def submit_selfplay(self, orders):
        self.submitted.extend(orders)
        return len(orders)

    async def event_page(self, after, types, limit):
        assert types == ["JOB_SUCCEEDED"]
        succeeded = [self.finished[0], ("t1", "square8_2p", 0), *self.finished[1:]]
        events = [
            EventView(i, "JOB_SUCCEEDED", job_id, {"kind": "train" if job_id == "t1" else "selfplay"})
            for i, (job_id, _, _) in enumerate(succeeded, 1)
        ]
        return [e for e in events if e.sequence > after][:limit]

    async def selfplay_games(self, job_id):
        return next((config, games, games * 1.5) for j, config, games in self.finished if j == job_id)

    async def add_games(self, config_key, games, cpu_seconds, job_id, epoch):
        self.added.append((job_id, config_key, games, cpu_seconds, epoch))


class FakeState:
    def __init__(self):
        self.value, self.version = b"", 0

    async def load_state(self, namespace, key):
        return SimpleNamespace(found=bool(self.value), value=self.value, version=self.version)

    async def persist_state(self, namespace, key, value, version, epoch):
        assert version == self.version
        self.value, self.version = value, version + 1
        return self.version


def node(kinds=("selfplay",), draining=False):
    return SimpleNamespace(job_kinds=list(kinds), draining=draining, quarantined=False)


class Members:
    def values(self):
        return {"a": node(), "b": node(), "c": node(), "trainer-only": node(("train",)), "d": node(draining=True)}


class Loops:
    """The pipeline loops on one fake client (standing for every service) and a state."""

    def __init__(self, client, state):
        self.populate_queue = QueuePopulator(client, client, client, Members(), 50, lambda players: 0.2, 10)
        self.count_games = GameCounter(_Both(state, client), client)
        self.trigger_training = TrainingTrigger(state, client, ["square8_2p", "square6_2p"])


class _Both:
    """StateService as GameCounter sees it: the cursor in ``state``, events and games in ``client``."""

    def __init__(self, state, client):
        self.load_state, self.persist_state = state.load_state, state.persist_state
        self.event_page, self.add_games = client.event_page, client.add_games


def loops(client, state=None):
    return Loops(client, state or FakeState())


async def test_every_node_is_topped_up_to_its_target_within_the_cap():
    client = FakeClient()
    assert await loops(client).populate_queue(epoch=4) == 13
    per_node = {n: sum(1 for node_id, _, _ in client.submitted if node_id == n) for n in "abc"}
    assert per_node == {"a": 3, "b": 10, "c": 0}  # a: 5 - 2; b: 30 capped at 10; c: full
    a_job = next(j for j in client.submitted if j[0] == "a")
    assert a_job[1] == "square8_2p" and a_job[2] == {
        "games": 50,
        "temperature": 0.2,
        "model": "models/square8_2p/g3.npz",
    }
    b_job = next(j for j in client.submitted if j[0] == "b")
    assert "model" not in b_job[2]  # no promoted model yet: generation 0 plays


class ThreePlayerClient(FakeClient):
    async def pick(self, node_id, seed):
        return "square6_3p" if node_id == "b" else "square8_2p"


async def test_a_config_takes_the_temperature_of_its_player_count_where_one_is_set():
    client = ThreePlayerClient()
    by_players = SelfplaySettings(temperature=0.03, temperature_by_players={3: 0.2}).temperature_for
    populate = QueuePopulator(client, client, client, Members(), 50, by_players, 10)
    assert await populate(epoch=4) == 13
    temperatures = {(node_id, config, params["temperature"]) for node_id, config, params in client.submitted}
    assert temperatures == {("a", "square8_2p", 0.03), ("b", "square6_3p", 0.2)}


@pytest.mark.parametrize("by_players", [{5: 0.1}, {3: -0.1}])
def test_a_temperature_for_a_player_count_outside_2_to_4_or_below_zero_is_refused(by_players):
    with pytest.raises(ValidationError, match="temperature_by_players"):
        SelfplaySettings(temperature_by_players=by_players)


async def test_games_are_counted_once_from_the_stored_cursor():
    client, state = FakeClient(), FakeState()
    assert await loops(client, state).count_games(epoch=4) == 90
    assert [a[0] for a in client.added] == ["j1", "j3"] and json.loads(state.value) == 4  # t1 is not self-play
    assert [a[3] for a in client.added] == [75.0, 60.0]  # each job's CPU time goes with its games
    client.added.clear()
    assert await loops(client, state).count_games(epoch=5) == 0  # a new leader starts at the cursor
    assert client.added == []


async def test_a_malformed_result_a_refused_count_or_a_bad_cursor_is_skipped_and_counting_goes_on():
    from ringrift_runtime.errors import InvalidArgument
    from ringrift_runtime.skipped import MalformedRecord, SkippedRecords

    class Poisoned(FakeClient):
        async def selfplay_games(self, job_id):
            if job_id == "j1":
                raise MalformedRecord("its result's games is not a count of games: 'many'")
            return await super().selfplay_games(job_id)

        async def add_games(self, config_key, games, cpu_seconds, job_id, epoch):
            if job_id == "j3":
                raise InvalidArgument.field("add_games", "must be at most 100000")
            await super().add_games(config_key, games, cpu_seconds, job_id, epoch)

    reported = []

    async def report(kind, name, reason):
        reported.append((kind, name))

    client, state = Poisoned(), FakeState()
    client.finished.append(("j4", "square6_2p", 10))
    state.value = b'"not a cursor"'
    counter = GameCounter(_Both(state, client), client, SkippedRecords("gateway", report))
    assert await counter(epoch=4) == 10  # j4's games: the loop went past j1 and j3
    assert json.loads(state.value) == 5  # and the cursor moved past them
    assert reported == [("cursor", "pipeline/games-cursor"), ("selfplay_result", "j1"), ("selfplay_result", "j3")]
    assert await counter(epoch=4) == 0 and len(reported) == 3  # nothing is retried or reported again


class TriggerClient(FakeClient):
    def __init__(self):
        super().__init__()
        self.triggers = []

    async def trigger_training(self, config_key, epoch, force=False):
        self.triggers.append((config_key, force))
        return SimpleNamespace(started=force, run=SimpleNamespace(run_id="r1"))


class IntentState(FakeState):
    def __init__(self, intents):
        super().__init__()
        self.intents = {k: (json.dumps(v).encode(), 1) for k, v in intents.items()}

    async def load_state(self, namespace, key):
        if namespace == "intents":
            value, version = self.intents.get(key, (b"", 0))
            return SimpleNamespace(found=key in self.intents, value=value, version=version)
        return await super().load_state(namespace, key)

    async def persist_state(self, namespace, key, value, version, epoch):
        if namespace == "intents":
            assert self.intents[key][1] == version
            self.intents[key] = (value, version + 1)
            return version + 1
        return await super().persist_state(namespace, key, value, version, epoch)


async def test_a_forced_request_waits_while_a_run_is_in_progress():
    client = TriggerClient()

    async def busy(config_key, epoch, force=False):
        client.triggers.append((config_key, force))
        return SimpleNamespace(started=False, run=None)

    client.trigger_training = busy
    state = IntentState({"train/square6_2p": {"force": True}})
    await loops(client, state).trigger_training(epoch=7)
    assert json.loads(state.intents["train/square6_2p"][0]) == {"force": True}  # kept for the next round


async def test_an_operator_request_forces_one_trigger_and_is_then_cleared():
    client = TriggerClient()
    state = IntentState({"train/square6_2p": {"force": True}})
    pipeline = loops(client, state)
    await pipeline.trigger_training(epoch=7)
    assert sorted(client.triggers) == [("square6_2p", True), ("square8_2p", False)]
    assert state.intents["train/square6_2p"][0] == b""
    client.triggers.clear()
    await pipeline.trigger_training(epoch=7)
    assert sorted(client.triggers) == [("square6_2p", False), ("square8_2p", False)]
