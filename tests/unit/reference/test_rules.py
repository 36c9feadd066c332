"""Rules of Rift, the reference game."""

import numpy as np
import pytest

from ringrift_reference.game import EMPTY, GameState, RulesError, geometry, parse_config
from ringrift_reference.players import HeuristicPlayer, RandomPlayer, play_game


def test_config_keys_pick_board_and_players_from_the_key():
    geo, players = parse_config("square8_3p")
    assert (geo.board, geo.size, players) == ("square8", 8, 3)
    geo6, players6 = parse_config("square6_4p")
    assert (geo6.size, players6) == (6, 4)
    # square8 is not square18, and a prefix is not a board.
    with pytest.raises(RulesError):
        parse_config("square18_2p")
    for bad in ("square8", "square8_5p", "square7_2p", "hexagonal_2p", "Square8_2p", "square8_2p/../x"):
        with pytest.raises(RulesError):
            parse_config(bad)


@pytest.mark.parametrize("players", [2, 3, 4])
def test_everyone_starts_with_the_same_stones_and_the_first_player_can_capture(players):
    state = GameState.new(f"square6_{players}p")
    assert state.scores() == [state.scores()[0]] * players and state.scores()[0] >= 1
    assert any(captured for _, captured in state.legal_moves())


def test_two_player_start_is_othello():
    state = GameState.new("square8_2p")
    n = 8
    assert state.cells[3 * n + 3] == 0 and state.cells[4 * n + 4] == 0
    assert state.cells[3 * n + 4] == 1 and state.cells[4 * n + 3] == 1
    moves = dict(state.legal_moves())
    assert sorted(moves) == sorted([2 * n + 4, 3 * n + 5, 4 * n + 2, 5 * n + 3])
    assert all(len(captured) == 1 for captured in moves.values())


def test_a_capture_flips_every_bracketed_line_and_nothing_else():
    state = GameState.new("square6_2p")
    state.cells = [EMPTY] * 36
    # Player 0 plays (0,3). Leftwards (0,2),(0,1) are player 1's, bracketed by (0,0);
    # downwards (1,3),(2,3),(3,3) are player 1's, bracketed by (4,3); the diagonal
    # towards (1,2) starts with an empty cell, so it captures nothing.
    state.cells[0] = 0
    state.cells[1] = state.cells[2] = 1
    state.cells[9] = state.cells[15] = state.cells[21] = 1
    state.cells[27] = 0
    state.empties = state.cells.count(EMPTY)
    captured = sorted(state.captures(3, 0))
    assert captured == [1, 2, 9, 15, 21]
    state.play(3)
    assert state.scores() == [2 + 1 + 5, 0]
    assert state.to_move == 1


def test_without_a_capture_a_player_places_next_to_a_stone():
    state = GameState.new("square6_2p")
    state.cells = [EMPTY] * 36
    state.cells[14] = 1
    state.empties = 35
    moves = state.legal_moves()
    assert moves and all(not captured for _, captured in moves)
    assert sorted(cell for cell, _ in moves) == sorted(geometry("square6").neighbours[14])


def test_illegal_moves_are_refused_and_change_nothing():
    state = GameState.new("square6_2p")
    before = state.cells[:]
    with pytest.raises(RulesError):
        state.play(14)  # occupied
    with pytest.raises(RulesError):
        state.play(0)  # empty but not a capture while captures exist
    with pytest.raises(RulesError):
        state.play(99)
    assert state.cells == before and state.to_move == 0


@pytest.mark.parametrize("config_key", ["square6_2p", "square6_3p", "square8_4p"])
def test_a_game_fills_the_board_and_scores_add_up(config_key):
    geo, players = parse_config(config_key)
    record = play_game(config_key, [RandomPlayer()] * players, seed=7)
    start = GameState.new(config_key)
    assert len(record.moves) == geo.cells - (geo.cells - start.empties)
    assert sum(record.scores) == geo.cells
    assert record.winners == [p for p, s in enumerate(record.scores) if s == max(record.scores)]


def test_games_are_deterministic_under_a_seed():
    seats = [HeuristicPlayer(), RandomPlayer(), RandomPlayer()]
    a = play_game("square6_3p", seats, seed=42)
    b = play_game("square6_3p", seats, seed=42)
    c = play_game("square6_3p", seats, seed=43)
    assert a.moves == b.moves and a.scores == b.scores
    assert a.moves != c.moves


def test_random_openings_make_games_between_deterministic_players_differ():
    seats = [HeuristicPlayer(), HeuristicPlayer()]
    fixed = {tuple(play_game("square6_2p", seats, seed=s).moves[:6]) for s in range(20)}
    opened = {tuple(play_game("square6_2p", seats, seed=s, random_opening=4).moves[:6]) for s in range(20)}
    assert len(opened) > len(fixed) and len(opened) >= 15
    a = play_game("square6_2p", seats, seed=3, random_opening=4)
    assert a.moves == play_game("square6_2p", seats, seed=3, random_opening=4).moves


def test_symmetry_classes_fold_the_board_into_one_octant():
    geo = geometry("square8")
    assert len(geo.class_sizes) == 10 and sum(geo.class_sizes) == 64
    corners = {0, 7, 56, 63}
    assert len({geo.cell_class[c] for c in corners}) == 1
    assert geo.class_sizes[geo.cell_class[0]] == 4
    assert np.all(np.asarray(geo.class_sizes) > 0)
