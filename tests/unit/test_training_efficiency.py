"""bench.training_efficiency's statistics: the panel fit recovers simulated players of
known strength, its bootstrap interval covers the truth about 95 % of the time, and the
efficiency ratio is Elo per CPU-hour summed over configs."""

import math

import numpy as np
import pytest

from bench.training_efficiency import PANEL, Panel, Run, efficiency, fit_rating, interval
from ringrift_training.domain.gauntlet import expected_score


def _shares(rng: np.random.Generator, diff: float, units: int) -> np.ndarray:
    """Per-unit shares of a player ``diff`` Elo above its opponent: two games a unit."""
    return rng.binomial(2, expected_score(diff), units) / 2


def _panel(rng: np.random.Generator, truth: dict[str, float], units: int) -> Panel:
    own = {
        (a, b): _shares(rng, truth[a] - truth[b], units)
        for a, b in (("heuristic", "random"), ("alphabeta", "random"), ("alphabeta", "heuristic"))
    }
    models = {
        label: {o: _shares(rng, truth[label] - truth[o], units) for o in PANEL}
        for label in ("scheduler/c", "round_robin/c")
    }
    return Panel("c", own, models)


TRUTH = {"random": 0.0, "heuristic": 250.0, "alphabeta": 550.0, "scheduler/c": 400.0, "round_robin/c": 300.0}


def test_the_panel_fit_recovers_players_of_known_strength():
    errors = []
    for seed in range(40):
        fitted = _panel(np.random.default_rng(seed), TRUTH, units=150).ratings()
        errors.append([fitted[k] - TRUTH[k] for k in TRUTH if k != "random"])
    bias = np.mean(errors, axis=0)
    spread = np.std(errors, axis=0)
    assert np.all(np.abs(bias) < 30), bias  # the added drawn unit shrinks a little toward the opponents
    assert np.all(spread < 60), spread


def test_the_bootstrap_interval_covers_the_truth_about_95_percent_of_the_time():
    covered = 0
    trials = 60
    for seed in range(trials):
        rng = np.random.default_rng(1000 + seed)
        panel = _panel(rng, TRUTH, units=100)
        low, high = interval([panel.ratings(rng)["scheduler/c"] for _ in range(200)])
        covered += low <= TRUTH["scheduler/c"] <= high
    assert 0.85 <= covered / trials <= 1.0, covered


def test_a_clean_sweep_stays_finite_and_a_fair_score_rates_the_opponent():
    assert fit_rating([(0.0, 1.0, 50)]) < 1000
    assert fit_rating([(200.0, 0.5, 50)]) == pytest.approx(200.0, abs=0.5)
    assert fit_rating([(0.0, 0.76, 1000)]) == pytest.approx(200.0, abs=5)


def test_efficiency_is_summed_elo_per_cpu_hour_of_each_mode():
    runs = {"scheduler": Run("scheduler", cpu_seconds=3600), "round_robin": Run("round_robin", cpu_seconds=7200)}
    ratings = {
        "a": {"scheduler/a": 100.0, "round_robin/a": 100.0},
        "b": {"scheduler/b": 50.0},  # round-robin promoted nothing: generation 0, 0 Elo
    }
    ratio, configs = efficiency(runs, ratings)
    assert ratio == pytest.approx((150 / 1) / (100 / 2))
    assert configs["a"] == pytest.approx(2.0) and math.isinf(configs["b"])
    nothing, _ = efficiency(runs, {"a": {}})
    assert math.isnan(nothing)
