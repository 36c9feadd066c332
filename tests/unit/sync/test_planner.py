"""Sync planning and execution rules, on hand-made manifests."""

import asyncio
import itertools

import pytest

from ringrift_sync.domain.executor import execute
from ringrift_sync.domain.planner import DataFile, Goal, NodeFiles, make_plan, wanted_files

GB = 1 << 30


def games(name: str, sha: str, size: int = 1000, config: str = "square8_2p") -> DataFile:
    return DataFile(f"games/{config}/{name}.db", "games", config, size, sha * 64, 10)


def node(node_id: str, *files: DataFile, disk_percent: float = 10.0, free: int = 900 * GB) -> NodeFiles:
    return NodeFiles(node_id, list(files), disk_percent, free)


def plan_for(goal, manifests, targets, busy=None, limit=85.0, config="square8_2p", sha=""):
    ids = (f"t{i}" for i in itertools.count())
    files = wanted_files(goal, config, manifests, sha)
    return make_plan("p", goal, config, files, manifests, targets, busy or {}, limit, lambda: next(ids))


def test_games_go_to_the_trainer_once_per_content_and_never_what_it_has():
    manifests = {
        "a": node("a", games("1", "a"), games("2", "b")),
        "b": node("b", games("2-copy", "b"), games("3", "c"), games("x", "d", config="square19_2p")),
        "trainer": node("trainer", games("mine", "c")),
    }
    plan = plan_for(Goal.GAMES_TO_TRAINER, manifests, ["trainer"])
    moved = sorted(t.file.sha256[0] for t in plan.transfers)
    assert moved == ["a", "b"]  # c is already there (other path, same content); d is another config
    assert all(t.target == "trainer" for t in plan.transfers)
    assert [s.reason for s in plan.skipped] == ["already present (same sha256)"]


def test_the_least_busy_holder_is_the_source_and_load_spreads():
    files = [games(str(i), c) for i, c in enumerate("abcd")]
    manifests = {"a": node("a", *files), "b": node("b", *files), "t": node("t")}
    plan = plan_for(Goal.GAMES_TO_TRAINER, manifests, ["t"], busy={"a": 1})
    sources = [t.source for t in plan.transfers]
    assert sources.count("a") == 2 and sources.count("b") == 2 and sources[0] == "b"


def test_the_disk_guard_skips_what_would_pass_the_limit():
    big = games("big", "e", size=100 * GB)
    small = games("small", "f", size=1 * GB)
    # 1000 GB disk, 80 % used: 200 GB free; +100 GB would reach 90 % > 85 %.
    manifests = {"src": node("src", big, small), "t": node("t", disk_percent=80.0, free=200 * GB)}
    plan = plan_for(Goal.GAMES_TO_TRAINER, manifests, ["t"])
    assert [t.file.path for t in plan.transfers] == [small.path]
    assert len(plan.skipped) == 1 and plan.skipped[0].reason.startswith("disk guard")


def test_a_model_goes_to_every_player_that_lacks_it_and_nothing_else_moves():
    model = DataFile("models/square8_2p/m2.npz", "models", "square8_2p", 500, "9" * 64)
    old = DataFile("models/square8_2p/m1.npz", "models", "square8_2p", 500, "8" * 64)
    manifests = {
        "trainer": node("trainer", model, old, games("g", "a")),
        "p1": node("p1", old),
        "p2": node("p2", model),
    }
    plan = plan_for(Goal.MODEL_TO_PLAYERS, manifests, ["p1", "p2"], sha="9" * 64)
    assert [(t.target, t.file.path) for t in plan.transfers] == [("p1", model.path)]
    assert plan.transfers[0].source in ("trainer", "p2")  # both hold it and neither is busy


def test_small_files_run_first_so_large_ones_are_staggered():
    files = [games("huge", "a", 10 * GB), games("tiny", "b", 10), games("mid", "c", GB)]
    plan = plan_for(Goal.GAMES_TO_TRAINER, {"s": node("s", *files), "t": node("t")}, ["t"])
    assert [t.file.path.split("/")[-1] for t in plan.transfers] == ["tiny.db", "mid.db", "huge.db"]


class FakePuller:
    def __init__(self, fail: set[str] = frozenset()):
        self.active_in: dict[str, int] = {}
        self.active_out: dict[str, int] = {}
        self.peak_in = self.peak_out = 0
        self.fail = fail
        self.budgets = []

    async def pull(self, transfer, max_bytes_per_second):
        self.budgets.append(max_bytes_per_second)
        self.active_in[transfer.target] = self.active_in.get(transfer.target, 0) + 1
        self.active_out[transfer.source] = self.active_out.get(transfer.source, 0) + 1
        self.peak_in = max(self.peak_in, *self.active_in.values())
        self.peak_out = max(self.peak_out, *self.active_out.values())
        try:
            await asyncio.sleep(0.01)
            if transfer.file.path in self.fail:
                raise RuntimeError("disk on fire")
            yield transfer.file.size // 2
            await asyncio.sleep(0.01)
            yield transfer.file.size
        finally:
            self.active_in[transfer.target] -= 1
            self.active_out[transfer.source] -= 1


async def test_execution_keeps_two_in_and_two_out_per_node_and_isolates_failures():
    files = [games(str(i), f"{i:x}") for i in range(12)]
    manifests = {"s1": node("s1", *files), "s2": node("s2", *files), "t1": node("t1"), "t2": node("t2")}
    plan = plan_for(Goal.GAMES_TO_TRAINER, manifests, ["t1", "t2"])
    assert len(plan.transfers) == 24
    puller = FakePuller(fail={files[3].path})
    changes = []

    async def on_change(transfer, state, done, error):
        changes.append((transfer.transfer_id, state))

    reports = []
    progress = await execute(plan, puller, 2, 2, 8000, on_change, lambda p: reports.append(p.bytes_done))
    assert puller.peak_in == 2 and puller.peak_out == 2
    assert progress.transfers_failed == 2 and progress.transfers_done == 22 and progress.finished
    assert "disk on fire" in next(iter(progress.errors.values()))
    assert sorted(s for _, s in changes).count("completed") == 22
    assert set(puller.budgets) == {4000}  # the node's budget shared by its two incoming transfers
    assert reports[-1] == progress.bytes_done == sum(f.size for f in files) * 2 - 2 * files[3].size


@pytest.mark.parametrize("percent, free, fits", [(0.0, 100, True), (99.9, 1, False), (100.0, 0, False)])
def test_disk_totals_from_percent_and_free(percent, free, fits):
    manifests = {"s": node("s", games("g", "a", size=1)), "t": node("t", disk_percent=percent, free=free)}
    plan = plan_for(Goal.GAMES_TO_TRAINER, manifests, ["t"])
    assert bool(plan.transfers) is fits
