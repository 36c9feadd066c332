"""The gauntlet's decision rule, tested by simulation of the project's own code: at the
hypotheses the measured error rates, cap and every-unit looks included, stay within the
stated alpha and beta and the median decision takes at most half the cap, for 2, 3 and
4 players; an evaluator that errors or plays no games never promotes; floors gate
everything."""

import numpy as np
import pytest

from ringrift_settings import TrainingSettings
from ringrift_training.domain import simulation
from ringrift_training.domain.gauntlet import (
    Decision,
    GateRule,
    Tally,
    _mle,
    decide,
    expected_score,
    grid,
    llr,
    los,
    sequential,
    sequential_many,
)
from ringrift_training.domain.stages import gate_rule

RULE = gate_rule(TrainingSettings())
FLOORS_2P = {"random": 0.85, "heuristic": 0.85}
GOOD_BASELINES = {"random": Tally(38, 2, 0), "heuristic": Tally(36, 4, 0)}
STATED = 0.05  # the error rates the settings promise, measured including the cap


def measured(elo: float, players: int, runs: int, seed: int, **game) -> tuple[float, float]:
    """P(promote) and the median games to a decision over ``runs`` simulated gauntlets."""
    rng = np.random.default_rng(seed)
    units = simulation.units(rng, elo, runs, RULE.max_units(players), players=players, **game)
    decision, used, _ = sequential_many(units, players, RULE)
    return float((decision == 1).mean()), float(np.median(used * players))


@pytest.mark.parametrize(
    ("players", "game"),
    [(2, {"draw": 0.05, "bias_sd": 0.0}), (2, {"draw": 0.3, "bias_sd": 300.0}), (3, {}), (4, {})],
    ids=["2p-few-draws", "2p-biased-openings", "3p", "4p"],
)
def test_error_rates_and_cost_at_the_hypotheses(players, game):
    runs = 2000
    slack = 2 * np.sqrt(STATED * (1 - STATED) / runs)  # two standard errors of the estimate
    promoted_h0, median_h0 = measured(RULE.elo0, players, runs, seed=11, **game)
    promoted_h1, median_h1 = measured(RULE.elo1, players, runs, seed=12, **game)
    assert promoted_h0 <= STATED + slack, f"alpha {promoted_h0:.3f}"
    assert 1 - promoted_h1 <= STATED + slack, f"beta {1 - promoted_h1:.3f}"
    assert median_h0 <= RULE.max_games / 2 and median_h1 <= RULE.max_games / 2


@pytest.mark.parametrize("players", [3, 4])
def test_an_equal_candidate_in_multiplayer_is_promoted_at_most_alpha_of_the_time(players):
    """With a cap far beyond the usual one (close to Wald's open test), so that only the
    per-unit variance matters: the old pairwise count promoted an equal 4p candidate 12 %
    of the time."""
    runs = 1000
    open_rule = GateRule(RULE.elo0, RULE.elo1, RULE.alpha, RULE.beta, RULE.min_units, max_games=400 * players)
    units = simulation.units(np.random.default_rng(5), 0.0, runs, open_rule.max_units(players), players=players)
    decision, _, _ = sequential_many(units, players, open_rule)
    assert (decision == 1).mean() <= RULE.alpha + 2 * np.sqrt(RULE.alpha * (1 - RULE.alpha) / runs)


def test_a_clearly_weaker_candidate_is_rejected_and_a_clearly_stronger_one_promoted():
    assert measured(-100.0, 2, 400, seed=3)[0] == 0.0
    assert measured(200.0, 2, 400, seed=4)[0] == 1.0


def test_the_constrained_fit_has_the_hypothesis_mean_and_the_llr_follows_the_score():
    x = np.arange(5) / 4
    p_hat = np.array([[0.1, 0.2, 0.3, 0.25, 0.15], [0.5, 0.0001, 0.0001, 0.0001, 0.4997]])
    for s in (0.3, 0.5, expected_score(65)):
        fitted = _mle(p_hat, x, s)
        assert np.allclose(fitted @ x, s, atol=1e-9) and np.allclose(fitted.sum(axis=1), 1)
    weak, even, strong = [[4, 6, 10, 0, 0]], [[2, 4, 8, 4, 2]], [[0, 0, 10, 6, 4]]
    assert llr(np.array(weak), 0, 65) < llr(np.array(even), 0, 65) < 0 < llr(np.array(strong), 0, 65)
    assert llr(np.zeros((1, 5)), 0, 65)[0] == 0.0


def test_looks_from_the_minimum_the_first_crossing_decides_and_the_cap_takes_the_side_of_zero():
    lower, upper = RULE.bounds
    assert lower == pytest.approx(np.log(0.04 / 0.96)) and upper == pytest.approx(np.log(0.96 / 0.04))
    assert sequential([4] * (RULE.min_units - 1), 2, RULE).decision is Decision.CONTINUE
    sweep = sequential([4] * 40, 2, RULE)
    assert sweep.decision is Decision.PROMOTE and sweep.units < 40  # later units change nothing
    assert sequential([4] * sweep.units + [0] * 30, 2, RULE) == sweep
    assert sequential([0] * 40, 2, RULE).decision is Decision.REJECT
    cap = RULE.max_units(2)
    midway = simulation.units(np.random.default_rng(9), (RULE.elo0 + RULE.elo1) / 2, 300, cap)
    decision, used, values = sequential_many(midway, 2, RULE)
    at_cap = (used == cap) & (values > lower) & (values < upper)  # no bound crossed, even at the last unit
    assert at_cap.sum() >= 10
    assert np.array_equal(decision[at_cap], np.where(values[at_cap] > 0, 1, -1))
    row = int(np.flatnonzero(at_cap)[0])
    one = sequential(midway[row].tolist(), 2, RULE)
    assert one.units == cap and one.decision is (Decision.PROMOTE if values[row] > 0 else Decision.REJECT)


def test_units_outside_the_grid_are_refused():
    assert grid(2) == 4 and grid(3) == 12 and grid(4) == 24
    with pytest.raises(ValueError, match=r"0\.\.4"):
        sequential([5], 2, RULE)
    with pytest.raises(ValueError, match="at least 2 players"):
        grid(1)


def test_nonregression_mode_puts_h0_at_minus_x():
    rule = gate_rule(TrainingSettings(gauntlet_mode="nonregression"))
    assert (rule.elo0, rule.elo1) == (-65, 0)
    even = simulation.units(np.random.default_rng(8), 0.0, 300, rule.max_units(2))
    decision, _, _ = sequential_many(even, 2, rule)
    assert (decision == 1).mean() >= 0.9  # an equal candidate passes a non-regression gate


def test_settings_refuse_an_empty_interval():
    with pytest.raises(ValueError, match="sprt_elo1"):
        TrainingSettings(sprt_elo0=10, sprt_elo1=10)


def test_los():
    assert los(Tally(0, 0, 10)) == 0.5
    assert los(Tally(60, 40, 0)) == pytest.approx(0.977, abs=0.001)


def test_fail_closed():
    sweep = [4] * 40
    assert decide(sweep, 2, GOOD_BASELINES, FLOORS_2P, RULE, error="agent lost").decision is Decision.REJECT
    no_games = {"random": Tally(), "heuristic": Tally(36, 4, 0)}
    verdict = decide(sweep, 2, no_games, FLOORS_2P, RULE)
    assert verdict.decision is Decision.REJECT and "no games against random" in verdict.reason
    missing = {"heuristic": Tally(36, 4, 0)}
    assert decide(sweep, 2, missing, FLOORS_2P, RULE).decision is Decision.REJECT
    weak = {"random": Tally(38, 2, 0), "heuristic": Tally(30, 10, 0)}  # 0.75 < 0.85
    verdict = decide(sweep, 2, weak, FLOORS_2P, RULE)
    assert verdict.decision is Decision.REJECT and "below the floor" in verdict.reason
    assert decide([], 2, GOOD_BASELINES, FLOORS_2P, RULE).decision is Decision.CONTINUE
    assert decide(sweep, 2, GOOD_BASELINES, FLOORS_2P, RULE).decision is Decision.PROMOTE


def test_the_first_model_of_a_config_needs_only_the_floors():
    assert decide(None, 2, GOOD_BASELINES, FLOORS_2P, RULE).decision is Decision.PROMOTE
    weak = {"random": Tally(30, 10, 0), "heuristic": Tally(36, 4, 0)}
    assert decide(None, 2, weak, FLOORS_2P, RULE).decision is Decision.REJECT
