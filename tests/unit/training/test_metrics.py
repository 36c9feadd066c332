"""The coordinator's runs as Prometheus series: the gauntlet's idle time grows while no
game arrives and starts over with each new game."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from ringrift_training.adapters.metrics import RunCollector
from ringrift_training.domain.runs import Run, Stage


def test_gauntlet_idle_seconds_restart_with_each_game_and_only_active_runs_show() -> None:
    clock = {"now": 1000.0}
    old = Run(run_id="r0", config_key="square8_2p", stage=Stage.PROMOTED, started_at=1.0)
    run = Run(run_id="r1", config_key="square8_2p", stage=Stage.TRAINING, started_at=2.0)
    other = Run(run_id="r2", config_key="square6_2p", stage=Stage.EXPORTING, started_at=3.0)
    runs = {r.run_id: r for r in (old, run, other)}
    registry = CollectorRegistry()
    registry.register(RunCollector(lambda: runs, lambda: clock["now"]))

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert value("ringrift_training_run_active", config="square8_2p", stage="training") == 1
    assert value("ringrift_training_run_active", config="square8_2p", stage="promoted") is None
    assert value("ringrift_training_gauntlet_idle_seconds", config="square8_2p") is None  # not evaluating
    run.stage = Stage.EVALUATING
    assert value("ringrift_training_gauntlet_idle_seconds", config="square8_2p") == 0
    clock["now"] += 600
    assert value("ringrift_training_gauntlet_idle_seconds", config="square8_2p") == 600
    run.tallies["incumbent"] = [3, 1, 0]
    clock["now"] += 60
    assert value("ringrift_training_gauntlet_idle_seconds", config="square8_2p") == 0
    assert value("ringrift_training_gauntlet_games", config="square8_2p") == 4
    clock["now"] += 30
    assert value("ringrift_training_gauntlet_idle_seconds", config="square8_2p") == 30
    run.stage = Stage.REJECTED
    assert value("ringrift_training_gauntlet_games", config="square8_2p") is None
    assert value("ringrift_training_run_active", config="square6_2p", stage="exporting") == 1
