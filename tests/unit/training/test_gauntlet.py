"""The gauntlet's decision rule, tested by simulation: with known strength gaps the SPRT's
false-promotion and false-rejection rates stay within alpha and beta; an evaluator that
errors or plays no games never promotes; floors gate everything."""

import numpy as np
import pytest

from ringrift_training.domain.gauntlet import (
    Decision, SprtRule, Tally, decide, expected_score, llr, los, sprt,
)

RULE = SprtRule()
FLOORS_2P = {"random": 0.85, "heuristic": 0.85}
GOOD_BASELINES = {"random": Tally(38, 2, 0), "heuristic": Tally(36, 4, 0)}


def simulate(elo: float, rule: SprtRule, runs: int, seed: int, batch: int = 10, draw_rate: float = 0.1) -> dict:
    """Play ``runs`` gauntlets game by game (checked every ``batch`` games) against an
    opponent ``elo`` weaker; count the decisions."""
    rng = np.random.default_rng(seed)
    score = expected_score(elo)
    p_win = max(0.0, score - draw_rate / 2)
    p_draw = draw_rate
    outcomes = {Decision.PROMOTE: 0, Decision.REJECT: 0}
    for _ in range(runs):
        wins = losses = draws = 0
        while True:
            u = rng.random(batch)
            wins += int((u < p_win).sum())
            draws += int(((u >= p_win) & (u < p_win + p_draw)).sum())
            losses += int((u >= p_win + p_draw).sum())
            decision = sprt(Tally(wins, losses, draws), rule)
            if decision is not Decision.CONTINUE:
                outcomes[decision] += 1
                break
    return outcomes


def test_error_rates_of_the_open_test_are_within_alpha_and_beta():
    """Without the 400-game cap (Wald's test as such), at exactly H0 and H1."""
    rule = SprtRule(max_games=10**9, min_games=40)
    at_h0 = simulate(rule.elo0, rule, runs=300, seed=1, batch=50)
    at_h1 = simulate(rule.elo1, rule, runs=300, seed=2, batch=50)
    # Binomial noise over 300 runs: allow two standard errors above the nominal rate.
    slack = 2 * np.sqrt(0.05 * 0.95 / 300)
    assert at_h0[Decision.PROMOTE] / 300 <= rule.alpha + slack
    assert at_h1[Decision.REJECT] / 300 <= rule.beta + slack


@pytest.mark.parametrize("elo", [-100, -20, 0])
def test_the_capped_test_rarely_promotes_a_candidate_that_is_not_stronger(elo):
    outcome = simulate(elo, RULE, runs=400, seed=3)
    assert outcome[Decision.PROMOTE] / 400 <= RULE.alpha


@pytest.mark.parametrize("elo", [150, 300])
def test_the_capped_test_rarely_rejects_a_clearly_stronger_candidate(elo):
    outcome = simulate(elo, RULE, runs=400, seed=4)
    assert outcome[Decision.REJECT] / 400 <= RULE.beta


def test_bounds_min_and_max_games_and_the_final_rule():
    lower, upper = RULE.bounds
    assert lower == pytest.approx(np.log(0.05 / 0.95)) and upper == pytest.approx(np.log(0.95 / 0.05))
    assert sprt(Tally(39, 0, 0), RULE) is Decision.CONTINUE  # below the minimum, even a sweep waits
    assert sprt(Tally(40, 0, 0), RULE) is Decision.PROMOTE
    assert sprt(Tally(0, 40, 0), RULE) is Decision.REJECT
    # At the maximum with the LLR between the bounds: win rate >= 0.55 and LOS >= 95 %.
    even = Tally(200, 200, 0)
    assert lower < llr(even, 0, 20) < upper and sprt(even, RULE) is Decision.REJECT
    edge = Tally(222, 178, 0)
    assert edge.score >= 0.55 and los(edge) >= 0.95
    assert sprt(edge, RULE) is Decision.PROMOTE


def test_los():
    assert los(Tally(0, 0, 10)) == 0.5
    assert los(Tally(60, 40, 0)) == pytest.approx(0.977, abs=0.001)


def test_fail_closed():
    assert decide(Tally(40, 0, 0), GOOD_BASELINES, FLOORS_2P, RULE, error="agent lost").decision is Decision.REJECT
    no_games = {"random": Tally(), "heuristic": Tally(36, 4, 0)}
    verdict = decide(Tally(40, 0, 0), no_games, FLOORS_2P, RULE)
    assert verdict.decision is Decision.REJECT and "no games against random" in verdict.reason
    missing = {"heuristic": Tally(36, 4, 0)}
    assert decide(Tally(40, 0, 0), missing, FLOORS_2P, RULE).decision is Decision.REJECT
    weak = {"random": Tally(38, 2, 0), "heuristic": Tally(30, 10, 0)}  # 0.75 < 0.85
    verdict = decide(Tally(40, 0, 0), weak, FLOORS_2P, RULE)
    assert verdict.decision is Decision.REJECT and "below the floor" in verdict.reason
    assert decide(Tally(), GOOD_BASELINES, FLOORS_2P, RULE).decision is Decision.CONTINUE


def test_the_first_model_of_a_config_needs_only_the_floors():
    assert decide(None, GOOD_BASELINES, FLOORS_2P, RULE).decision is Decision.PROMOTE
    assert decide(None, {"random": Tally(30, 10, 0), "heuristic": Tally(36, 4, 0)}, FLOORS_2P, RULE).decision is Decision.REJECT
