"""The coordinator's runs as Prometheus series, read when scraped: which stage each
config's active run is in, how many gauntlet games it has played, and how long its
gauntlet has gone without a new game (the "gauntlet stalled" alert in
deploy/prometheus/alerts.yml)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ringrift_training.domain.runs import Run, Stage


class RunCollector(Collector):
    def __init__(self, runs: Callable[[], dict[str, Run]], clock: Callable[[], float] = time.time) -> None:
        self._runs, self._clock = runs, clock
        # run id -> (games played, when that count was first seen): progress between scrapes.
        self._progress: dict[str, tuple[int, float]] = {}

    def collect(self) -> Iterator[Metric]:
        now = self._clock()
        active: dict[str, Run] = {}
        for run in list(self._runs().values()):
            if not run.finished and (
                run.config_key not in active or run.started_at > active[run.config_key].started_at
            ):
                active[run.config_key] = run
        stage = GaugeMetricFamily(
            "ringrift_training_run_active",
            "1 for the stage of each config's active training run.",
            labels=["config", "stage"],
        )
        games = GaugeMetricFamily(
            "ringrift_training_gauntlet_games", "Gauntlet games played by each config's active run.", labels=["config"]
        )
        idle = GaugeMetricFamily(
            "ringrift_training_gauntlet_idle_seconds",
            "Seconds since the evaluating run of a config last gained a gauntlet game (or began evaluating).",
            labels=["config"],
        )
        progress: dict[str, tuple[int, float]] = {}
        for config, run in sorted(active.items()):
            stage.add_metric([config, run.stage.value], 1.0)
            played = sum(sum(tally) for tally in run.tallies.values())
            games.add_metric([config], float(played))
            if run.stage is Stage.EVALUATING:
                seen, since = self._progress.get(run.run_id, (-1, now))
                progress[run.run_id] = (played, since if seen == played else now)
                idle.add_metric([config], now - progress[run.run_id][1])
        self._progress = progress
        yield stage
        yield games
        yield idle
