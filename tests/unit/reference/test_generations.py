"""The generations harness behind ``bench.reference_learning``: each generation is trained
on the newest window of games played by the one before, the games do not depend on how
self-play is split across processes, and scores convert to Elo as the gauntlet's do."""

import numpy as np
import pytest

from ringrift_reference.learning import Schedule, elo, generations, score
from ringrift_reference.players import ModelPlayer, RandomPlayer

TINY = Schedule("square6_2p", generations=3, first_games=12, games_per_generation=6, window=12, epochs=2)


def test_each_generation_trains_from_the_one_before_and_the_split_of_self_play_changes_nothing():
    whole = list(generations(TINY))
    split = list(generations(TINY, map, chunks=4))
    assert [m.meta["generation"] for m in whole] == [1, 2, 3]
    assert all(np.array_equal(a.weights, b.weights) for a, b in zip(whole, split, strict=True))
    assert not np.array_equal(whole[0].weights, whole[1].weights)
    assert score("square6_2p", ModelPlayer(whole[-1]), RandomPlayer(), units=10) > 0.5


@pytest.mark.parametrize(("share", "expected"), [(0.5, 0.0), (0.76, 200.0), (0.24, -200.0)])
def test_a_score_share_converts_to_elo(share, expected):
    assert elo(share, 1000) == pytest.approx(expected, abs=1.0)


def test_a_clean_sweep_is_clipped_half_a_game_from_certainty():
    assert elo(1.0, 100) == pytest.approx(elo(0.995, 100)) and elo(0.0, 100) < -900
