"""The opening book and the gauntlet's units: distinct openings (up to the board's
symmetries), roughly balanced, the same on every node; a 400-game gauntlet between two
deterministic players holds at least 395 distinct games; a unit's half points add up."""

import pytest

from ringrift_reference import jobs, openings
from ringrift_reference.data import samples
from ringrift_reference.game import GameState, parse_config
from ringrift_reference.model import Model, train
from ringrift_reference.players import ModelPlayer, RandomPlayer, play_game


def position(config_key: str, moves: tuple[int, ...]) -> GameState:
    state = GameState.new(config_key)
    for cell in moves:
        state.play(cell)
    return state


@pytest.mark.parametrize("config_key", ["square6_2p", "square8_2p", "square8_3p", "square8_4p"])
def test_the_book_holds_distinct_balanced_openings_and_is_the_same_everywhere(config_key):
    book = openings.book(config_key)
    assert len(book) >= 600  # room for a 400-game 2p gauntlet (200 units) many times over
    geo, _ = parse_config(config_key)
    symmetries = openings._symmetries(geo)
    keys = set()
    for moves in book:
        state = position(config_key, moves)  # every entry is a legal line of play
        scores = state.scores()
        assert max(scores) - min(scores) <= openings.BALANCE
        keys.add(openings.canonical(state, symmetries))
    assert len(keys) == len(book)  # no two entries are the same position, mirror images included
    openings.book.cache_clear()
    assert openings.book(config_key) == book  # a pure function of the config: every node agrees


def test_mirror_images_are_one_opening():
    geo, _ = parse_config("square6_2p")
    symmetries = openings._symmetries(geo)
    state = position("square6_2p", openings.book("square6_2p")[0])
    n = geo.size
    mirrored = state.copy()
    mirrored.cells = [state.cells[r * n + (n - 1 - c)] for r in range(n) for c in range(n)]
    assert mirrored.cells != state.cells
    assert openings.canonical(mirrored, symmetries) == openings.canonical(state, symmetries)


def _trained(config_key: str, seed: int) -> Model:
    random_player = RandomPlayer()
    records = [play_game(config_key, [random_player, random_player], 1000 * seed + s) for s in range(60)]
    features, targets = samples(records)
    return train(Model.initial(config_key), features, targets, epochs=3, seed=seed)


def test_a_400_game_gauntlet_between_deterministic_players_plays_395_distinct_games():
    config_key = "square6_2p"
    me = ModelPlayer(_trained(config_key, 1), lookahead=False)
    other = ModelPlayer(_trained(config_key, 2), lookahead=False)
    games, totals = [], []
    for offset in (0, 100):  # two jobs of one gauntlet: the second takes the next openings
        for total, records in jobs.play_units(config_key, me, other, 100, seed=7, offset=offset):
            totals.append(total)
            games.extend(tuple(r.moves) for r in records)
            mine = [r.scores[seat] for seat, r in enumerate(records)]
            theirs = [r.scores[1 - seat] for seat, r in enumerate(records)]
            assert total == sum(2 * (a > b) + (a == b) for a, b in zip(mine, theirs, strict=True))
    assert len(games) == 400 and len(set(games)) >= 395
    assert all(0 <= t <= 4 for t in totals) and len(set(totals)) > 1


def test_a_unit_in_four_player_games_counts_half_points_against_the_field():
    config_key = "square6_4p"
    (total, records), *_ = list(jobs.play_units(config_key, RandomPlayer(), RandomPlayer(), 1, seed=3, offset=5))
    assert len(records) == 4 and all(
        r.moves[: len(openings.opening(config_key, 5))] == list(openings.opening(config_key, 5)) for r in records
    )
    expected = 0
    for seat, record in enumerate(records):
        mine = record.scores[seat]
        expected += sum(2 * (mine > s) + (mine == s) for other, s in enumerate(record.scores) if other != seat)
    assert total == expected and 0 <= total <= 24
