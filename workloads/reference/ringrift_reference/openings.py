"""The opening book of a config: the positions gauntlets start from.

Short random playouts from the start position (``plies`` moves), kept when the position
is roughly balanced by a quick evaluation (the stone counts of the players differ by at
most ``balance``), deduplicated by position up to the board's eight symmetries (a mirror
image is the same opening). The book is a pure function of the config and its seed, so
every node builds the same book; a gauntlet plays book entry ``offset + unit`` for its
``unit``-th opening, from every seat.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from ringrift_reference.game import GameState, Geometry, parse_config

BOOK_SIZE = 1000
BALANCE = 2


def _symmetries(geo: Geometry) -> list[tuple[int, ...]]:
    """The eight symmetries of the square board as cell permutations."""
    n = geo.size
    transforms = [
        lambda r, c: (r, c),
        lambda r, c: (c, n - 1 - r),
        lambda r, c: (n - 1 - r, n - 1 - c),
        lambda r, c: (n - 1 - c, r),
        lambda r, c: (r, n - 1 - c),
        lambda r, c: (n - 1 - r, c),
        lambda r, c: (c, r),
        lambda r, c: (n - 1 - c, n - 1 - r),
    ]
    result = []
    for t in transforms:
        mapping = [0] * (n * n)
        for cell in range(n * n):
            r, c = t(*divmod(cell, n))
            mapping[r * n + c] = cell  # the transformed board's cell takes this cell's owner
        result.append(tuple(mapping))
    return result


def canonical(state: GameState, symmetries: list[tuple[int, ...]]) -> tuple[int, tuple[int, ...]]:
    cells = state.cells
    return state.to_move, min(tuple(cells[i] for i in mapping) for mapping in symmetries)


def default_plies(players: int) -> int:
    return 6 if players == 2 else 8


@cache
def book(config_key: str, size: int = BOOK_SIZE, seed: int = 0) -> tuple[tuple[int, ...], ...]:
    """Up to ``size`` distinct, balanced openings (move sequences) of ``config_key``."""
    geo, players = parse_config(config_key)
    plies = default_plies(players)
    symmetries = _symmetries(geo)
    rng = np.random.default_rng([seed, players, geo.size])
    seen: set[tuple[int, tuple[int, ...]]] = set()
    openings: list[tuple[int, ...]] = []
    for _ in range(size * 20):
        if len(openings) >= size:
            break
        state = GameState.new(config_key)
        moves = []
        for _ in range(plies):
            legal = state.legal_moves()
            cell, captured = legal[int(rng.integers(len(legal)))]
            state.play(cell, captured)
            moves.append(cell)
        scores = state.scores()
        if max(scores) - min(scores) > BALANCE:
            continue
        key = canonical(state, symmetries)
        if key in seen:
            continue
        seen.add(key)
        openings.append(tuple(moves))
    return tuple(openings)


def opening(config_key: str, index: int) -> tuple[int, ...]:
    """Book entry ``index`` (the book repeats past its end)."""
    entries = book(config_key)
    return entries[index % len(entries)]
