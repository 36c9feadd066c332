"""NodeSelector rules against hand-computed cases, and the vectorised ranking against a
brute-force sort."""

from __future__ import annotations

import random

import pytest

from ringrift_nodes.domain.model import JobNeeds, NodeView, Rejection, Reservation
from ringrift_nodes.domain.scoring import (
    NodeIndex,
    Selector,
    gpu_power,
    is_weak_gpu,
    load_score,
    ram_estimate_mb,
)
from ringrift_settings import NodeSelectorSettings

SETTINGS = NodeSelectorSettings()
TABLE, UNKNOWN = SETTINGS.gpu_power, SETTINGS.unknown_gpu_power
FREE = 64 * 1024  # plenty of free RAM


@pytest.mark.parametrize(
    ("model", "count", "power"),
    [
        ("NVIDIA A100-SXM4-80GB", 2, 1248),
        ("NVIDIA A10", 1, 250),
        ("NVIDIA A10G", 4, 1000),
        ("NVIDIA H100 80GB HBM3", 8, 16000),
        ("NVIDIA GH200 480GB", 1, 2500),
        ("NVIDIA GeForce RTX 4060 Ti", 1, 120),
        ("NVIDIA GeForce RTX 5090", 1, 419),
        ("Apple M2 Max", 1, 25),
        ("Tesla T4", 2, 20),
        ("NVIDIA A100", 0, 0),
    ],
)
def test_gpu_power_is_table_value_times_reported_count(model: str, count: int, power: float) -> None:
    assert gpu_power(model, count, TABLE, UNKNOWN) == power


@pytest.mark.parametrize(
    ("model", "weak"),
    [
        ("NVIDIA GeForce RTX 3060", True),
        ("RTX 4060 Ti", True),
        ("GeForce RTX 2080 SUPER", True),
        ("GTX 1080 Ti", True),
        ("GTX 1660", True),
        ("RTX 4090", False),
        ("A100", False),
    ],
)
def test_weak_gpus(model: str, weak: bool) -> None:
    assert is_weak_gpu(model, SETTINGS.weak_gpu_patterns) is weak


def test_load_score_by_hand() -> None:
    cpu_node = NodeView("n", cpu_percent=50, memory_percent=40, selfplay_jobs=2, training_jobs=1)
    # job_score = (2 + 2*1) * 12.5 = 50; load = 0.4*50 + 0.3*40 + 0.3*50 = 47
    assert load_score(cpu_node) == pytest.approx(47.0)
    gpu_node = NodeView(
        "g", gpu_count=1, gpu_percent=80, cpu_percent=50, memory_percent=40, selfplay_jobs=2, training_jobs=1
    )
    assert load_score(gpu_node) == pytest.approx(0.7 * 47 + 0.3 * 80)
    busy = NodeView("b", selfplay_jobs=20)
    assert load_score(busy) == pytest.approx(0.3 * 100)  # job score capped at 100


@pytest.mark.parametrize(
    ("needs", "gb"),
    [
        (JobNeeds("selfplay", needs_gpu=True), 8),
        (JobNeeds("selfplay", needs_gpu=True, engine="policy"), 6),
        (JobNeeds("selfplay", engine="heuristic"), 2),
        (JobNeeds("selfplay"), 4),
        (JobNeeds("train"), 16),
        (JobNeeds("gauntlet"), 4),
        (JobNeeds("custom-kind"), 4),
        (JobNeeds("train", min_free_ram_mb=1000), 1000 / 1024),
    ],
)
def test_ram_estimates(needs: JobNeeds, gb: float) -> None:
    assert ram_estimate_mb(needs, SETTINGS.ram_estimate_gb) == pytest.approx(gb * 1024)


def _selector(*views: NodeView) -> Selector:
    index = NodeIndex(SETTINGS)
    for view in views:
        index.upsert(view)
    return Selector(index, SETTINGS)


A100 = NodeView("a100", gpu_model="NVIDIA A100", gpu_count=1, gpu_memory_mb=81920, cpu_cores=16, free_ram_mb=FREE)
RTX4090 = NodeView("rtx4090", gpu_model="RTX 4090", gpu_count=1, gpu_memory_mb=24564, cpu_cores=32, free_ram_mb=FREE)
CPU = NodeView("cpu", cpu_cores=64, free_ram_mb=FREE)


def _reasons(scores) -> dict[str, Rejection]:
    return {s.node_id: s.rejection for s in scores}


def test_gpu_jobs_rank_by_gpu_power_cpu_jobs_by_cores() -> None:
    selector = _selector(A100, RTX4090, CPU)
    gpu = selector.explain(JobNeeds("selfplay", needs_gpu=True), {}, 0)
    assert [(s.node_id, s.rank) for s in gpu] == [("a100", 1), ("rtx4090", 2), ("cpu", 0)]
    assert gpu[2].rejection is Rejection.NO_GPU and "needs a GPU" in gpu[2].detail
    cpu = selector.rank(JobNeeds("selfplay"), {}, 0, k=3, exclude=frozenset())
    assert [s.node_id for s in cpu] == ["cpu", "rtx4090", "a100"]


def test_every_hard_filter_names_its_reason() -> None:
    selector = _selector(
        NodeView("full", disk_percent=70, free_ram_mb=FREE),
        NodeView("pressure", memory_percent=80, free_ram_mb=FREE),
        NodeView("norole", roles=frozenset({"selfplay"}), free_ram_mb=FREE),
        NodeView("poor", free_ram_mb=19 * 1024),  # 16 GB training + 4 GB reserve > 19 GB
        NodeView("drain", draining=True, free_ram_mb=FREE),
        NodeView("quar", quarantined=True, free_ram_mb=FREE),
        NodeView("ok", free_ram_mb=FREE),
    )
    reasons = _reasons(selector.explain(JobNeeds("train"), {}, 0))
    assert reasons == {
        "full": Rejection.DISK_FULL,
        "pressure": Rejection.MEMORY_PRESSURE,
        "norole": Rejection.MISSING_ROLE,
        "poor": Rejection.INSUFFICIENT_RAM,
        "drain": Rejection.DRAINING,
        "quar": Rejection.QUARANTINED,
        "ok": Rejection.NONE,
    }


def test_gpu_memory_labels_and_weak_gpus() -> None:
    weak = NodeView(
        "weak", gpu_model="RTX 3060", gpu_count=1, gpu_memory_mb=12288, free_ram_mb=FREE, labels={"zone": "a"}
    )
    strong = NodeView(
        "strong", gpu_model="RTX 4090", gpu_count=1, gpu_memory_mb=24564, free_ram_mb=FREE, labels={"zone": "b"}
    )
    selector = _selector(weak, strong)
    assert (
        _reasons(selector.explain(JobNeeds("selfplay", needs_gpu=True, gpu_tree_search=True), {}, 0))["weak"]
        is Rejection.WEAK_GPU
    )
    assert _reasons(selector.explain(JobNeeds("selfplay", needs_gpu=True, min_gpu_memory_mb=16000), {}, 0)) == {
        "strong": Rejection.NONE,
        "weak": Rejection.INSUFFICIENT_GPU_MEMORY,
    }
    assert (
        _reasons(selector.explain(JobNeeds("selfplay", labels={"zone": "a"}), {}, 0))["strong"]
        is Rejection.LABEL_MISMATCH
    )


def test_a_pinned_job_goes_only_to_its_nodes() -> None:
    selector = _selector(A100, RTX4090)
    pinned = JobNeeds("export", required_nodes=frozenset({"rtx4090", "gone"}))
    assert _reasons(selector.explain(pinned, {}, 0)) == {"rtx4090": Rejection.NONE, "a100": Rejection.NOT_REQUESTED}
    assert [s.node_id for s in selector.rank(pinned, {}, 0, 5, frozenset())] == ["rtx4090"]


def test_reservations_keep_other_work_away_until_they_expire() -> None:
    selector = _selector(A100, RTX4090)
    reserved = {"a100": Reservation("a100", "training", "job-1", expires_at=100.0)}
    assert (
        _reasons(selector.explain(JobNeeds("selfplay", needs_gpu=True), reserved, now=50))["a100"] is Rejection.RESERVED
    )
    assert selector.rank(JobNeeds("train", needs_gpu=True), reserved, 50, 1, frozenset())[0].node_id == "a100"
    assert selector.rank(JobNeeds("export", needs_gpu=True), reserved, 50, 1, frozenset())[0].node_id == "a100"
    assert _reasons(selector.explain(JobNeeds("selfplay", needs_gpu=True), reserved, now=150))["a100"] is Rejection.NONE


def test_locality_bonus_and_load_as_tie_breaker() -> None:
    twin_busy = NodeView("busy", gpu_model="A100", gpu_count=1, free_ram_mb=FREE, cpu_percent=90)
    twin_idle = NodeView("idle", gpu_model="A100", gpu_count=1, free_ram_mb=FREE, cpu_percent=10)
    selector = _selector(twin_busy, twin_idle)
    assert selector.rank(JobNeeds("selfplay", needs_gpu=True), {}, 0, 1, frozenset())[0].node_id == "idle"
    local = selector.rank(
        JobNeeds("selfplay", needs_gpu=True, preferred_nodes=frozenset({"busy"})), {}, 0, 2, frozenset()
    )
    assert [s.node_id for s in local] == ["busy", "idle"]
    assert local[0].locality_bonus == pytest.approx(624 * 0.25) and local[0].effective_power == pytest.approx(780)
    assert selector.rank(JobNeeds("selfplay", needs_gpu=True), {}, 0, 1, frozenset({"idle"}))[0].node_id == "busy"


def test_measured_throughput_replaces_declared_power() -> None:
    slow_big = NodeView("big", gpu_model="H100", gpu_count=1, free_ram_mb=FREE, throughput={"selfplay": 50})
    fast_small = NodeView("small", gpu_model="RTX 3090", gpu_count=1, free_ram_mb=FREE, throughput={"selfplay": 90})
    selector = _selector(slow_big, fast_small)
    best = selector.rank(JobNeeds("selfplay", needs_gpu=True), {}, 0, 1, frozenset())[0]
    assert best.node_id == "small" and best.measured_throughput == 90


def test_index_updates_and_removals_keep_rows_consistent() -> None:
    index = NodeIndex(SETTINGS, capacity=2)
    for i in range(10):
        index.upsert(NodeView(f"n{i}", cpu_cores=i + 1, free_ram_mb=FREE))
    index.remove("n0")
    index.remove("n5")
    index.upsert(NodeView("n3", cpu_cores=100, free_ram_mb=FREE))
    selector = Selector(index, SETTINGS)
    ranked = selector.rank(JobNeeds("selfplay"), {}, 0, 10, frozenset())
    assert [s.node_id for s in ranked] == ["n3", "n9", "n8", "n7", "n6", "n4", "n2", "n1"]
    assert [s.cpu_power for s in ranked] == [100, 10, 9, 8, 7, 5, 3, 2]


def test_vectorised_ranking_matches_a_brute_force_sort() -> None:
    rng = random.Random(7)
    models = ["A100", "RTX 4090", "RTX 3060", "H100", ""]
    views = [
        NodeView(
            f"n{i}",
            gpu_model=(m := rng.choice(models)),
            gpu_count=rng.randint(1, 4) if m else 0,
            cpu_cores=rng.choice([8, 16, 32]),
            free_ram_mb=rng.choice([8, 32, 64]) * 1024,
            cpu_percent=rng.choice([10, 50, 90]),
            memory_percent=rng.choice([20, 50, 80]),
            disk_percent=rng.choice([10, 75]),
        )
        for i in range(300)
    ]
    selector = _selector(*views)
    needs = JobNeeds("selfplay", needs_gpu=True)
    all_scores = selector.explain(needs, {}, 0)
    usable = [s for s in all_scores if s.usable]
    brute = sorted(usable, key=lambda s: (-s.effective_power, s.load))
    for k in (1, 5, 50, len(usable)):
        ranked = selector.rank(needs, {}, 0, k, frozenset())
        assert [(s.effective_power, s.load) for s in ranked] == [(s.effective_power, s.load) for s in brute[:k]]


def test_nodes_without_the_kind_in_their_catalog_are_rejected() -> None:
    index = NodeIndex(SETTINGS, capacity=1)
    selector = Selector(index, SETTINGS)
    index.upsert(NodeView("runs-sleep", free_ram_mb=FREE, job_kinds=frozenset({"sleep"})))
    assert _reasons(selector.explain(JobNeeds("selfplay"), {}, 0)) == {"runs-sleep": Rejection.UNSUPPORTED_KIND}
    index.upsert(NodeView("runs-all", free_ram_mb=FREE))  # grows the index and the kind column
    index.upsert(NodeView("runs-both", free_ram_mb=FREE, job_kinds=frozenset({"sleep", "selfplay"})))
    assert _reasons(selector.explain(JobNeeds("selfplay"), {}, 0)) == {
        "runs-sleep": Rejection.UNSUPPORTED_KIND,
        "runs-all": Rejection.NONE,
        "runs-both": Rejection.NONE,
    }
    index.remove("runs-sleep")
    index.upsert(NodeView("runs-all", free_ram_mb=FREE, job_kinds=frozenset({"sleep"})))
    assert _reasons(selector.explain(JobNeeds("selfplay"), {}, 0)) == {
        "runs-both": Rejection.NONE,
        "runs-all": Rejection.UNSUPPORTED_KIND,
    }
