"""The reference model's features: the rows a player builds for the positions after each
legal move (an update of the position's class counts, not a recount of the board) are
the features of the positions those moves lead to."""

import numpy as np
import pytest

from ringrift_reference.game import GameState
from ringrift_reference.model import FeatureBuilder, feature_count
from ringrift_reference.players import RandomPlayer


@pytest.mark.parametrize("config_key", ["square6_2p", "square8_3p"])
def test_the_rows_after_each_move_are_the_features_of_the_positions_they_lead_to(config_key):
    state = GameState.new(config_key)
    builder = FeatureBuilder(state.geo)
    rng = np.random.default_rng(3)
    captures = 0
    for _ in range(12):  # along a random game
        moves = state.legal_moves()
        rows = builder.after_moves(state, moves)
        assert rows.shape == (len(moves), feature_count(state.geo))
        for (cell, captured), row in zip(moves, rows, strict=True):
            child = state.copy()
            child.play(cell, captured)
            assert np.allclose(row, builder.position(child, state.to_move))
            captures += bool(captured)
        state.play(*moves[RandomPlayer().choose(state, moves, rng)])
    assert captures > 0  # the updates for captured stones were exercised
