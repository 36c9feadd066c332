"""Ratings by maximum likelihood from all matches, one anchor fixed."""

import numpy as np
import pytest

from ringrift_training.domain.gauntlet import expected_score
from ringrift_training.domain.ratings import Result, fit


def by_player(fitted):
    return {f.player: f for f in fitted}


def test_known_strengths_are_recovered_and_the_anchor_stays_put():
    rng = np.random.default_rng(7)
    truth = {"random": 1000, "heuristic": 1300, "g1": 1450, "g2": 1600}
    results = []
    names = list(truth)
    for a in names:
        for b in names:
            if a < b:
                p = expected_score(truth[a] - truth[b])
                wins = int(rng.binomial(2000, p))
                results.append(Result(a, b, wins, 2000 - wins, 0))
    ratings = by_player(fit(results, "random", 1000))
    assert ratings["random"].elo == 1000 and ratings["random"].stderr == 0
    for name, elo in truth.items():
        assert ratings[name].elo == pytest.approx(elo, abs=25)
        assert ratings[name].games == 6000
    assert 0 < ratings["g2"].stderr < 20


def test_the_fit_does_not_depend_on_order_and_draws_count_half():
    results = [Result("a", "random", 30, 10, 0), Result("b", "a", 5, 5, 10), Result("random", "b", 12, 28, 0)]
    first = by_player(fit(results, "random", 1000))
    second = by_player(fit(list(reversed(results)), "random", 1000))
    assert all(first[p].elo == pytest.approx(second[p].elo) for p in first)
    even = by_player(fit([Result("a", "random", 10, 10, 0)], "random", 1000))
    drawn = by_player(fit([Result("a", "random", 0, 0, 20)], "random", 1000))
    assert even["a"].elo == pytest.approx(1000) and drawn["a"].elo == pytest.approx(1000)


def test_an_unbeaten_player_gets_a_finite_rating_above_the_rest():
    ratings = by_player(fit([Result("g1", "random", 40, 0, 0), Result("g2", "g1", 30, 10, 0)], "random", 1000))
    assert np.isfinite(ratings["g1"].elo) and ratings["g2"].elo > ratings["g1"].elo > 1300


def pairwise(rankings: np.ndarray, names: list[str]) -> list[Result]:
    """Each game's ranking as the pairwise results of its players (how the gauntlet stores
    matches for every player count)."""
    results = []
    for order in rankings:
        for i, a in enumerate(order):
            for b in order[i + 1 :]:
                results.append(Result(names[a], names[b], 1, 0, 0))
    return results


@pytest.mark.parametrize("players", [2, 3, 4])
def test_plackett_luce_games_of_any_player_count_give_the_true_ratings(players):
    """Players of known strength play Plackett–Luce games; the ratings fitted from the
    pairwise results of those games (their marginals are Bradley–Terry) are within 30 Elo
    of the truth, the random anchor included in as many games as the others."""
    from ringrift_training.domain import simulation

    truth = np.array([1000.0, 1150.0, 1300.0, 1400.0, 1550.0])
    names = ["random", "heuristic", "g1", "g2", "g3"]
    games = {2: 6000, 3: 4000, 4: 3000}[players]
    rankings = simulation.rankings(np.random.default_rng(players), truth, games, players)
    ratings = by_player(fit(pairwise(rankings, names), "random", 1000))
    for name, elo in zip(names, truth, strict=True):
        assert ratings[name].elo == pytest.approx(elo, abs=30), (name, ratings[name].elo)
