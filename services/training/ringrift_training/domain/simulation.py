"""Simulated gauntlets between players of known strength: how the gate's error rates and
cost and the ratings' accuracy are checked (bench.gauntlet_sprt, the unit tests).

Two players: each unit is one opening played from both seats. The opening favours seat 0
by ``bias`` Elo drawn per unit from N(0, bias_sd) (so the two games of a unit are
correlated, as on a real opening book); a game is drawn with probability ``draw``, and
the candidate's strength is calibrated so that its expected score is exactly L(elo).

Three and four players: the games follow Plackett–Luce (the ranking is the order of
log-strength plus Gumbel noise), the candidate against players − 1 copies of the
incumbent, and every seat gets a per-unit advantage from N(0, bias_sd); the candidate's
strength is calibrated so that its expected pairwise score against the field is L(elo).
"""

from __future__ import annotations

import math

import numpy as np

from ringrift_training.domain.gauntlet import expected_score

LOG10_SCALE = math.log(10) / 400  # natural-log strength per Elo point
_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(41)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()


def _pair_score(elo: float, draw: float, bias_sd: float) -> float:
    """Expected per-game score of the two games of a unit at strength ``elo``."""
    bias = _NODES * bias_sd
    q = 0.5 * (_win(elo + bias, draw) + _win(elo - bias, draw)) + draw / 2
    return float((q * _WEIGHTS).sum())


def _win(elo: np.ndarray, draw: float) -> np.ndarray:
    """P(win) of one game: its expected score L(elo) kept within reach of the draw rate."""
    return np.clip(1 / (1 + 10 ** (-elo / 400)) - draw / 2, 0.0, 1.0 - draw)


def calibrated(elo: float, draw: float, bias_sd: float) -> float:
    """The strength whose expected score over biased openings is L(elo)."""
    target = expected_score(elo)
    low, high = -2000.0, 2000.0
    for _ in range(80):
        mid = 0.5 * (low + high)
        if _pair_score(mid, draw, bias_sd) < target:
            low = mid
        else:
            high = mid
    return 0.5 * (low + high)


def units(
    rng: np.random.Generator,
    elo: float,
    runs: int,
    count: int,
    players: int = 2,
    draw: float = 0.1,
    bias_sd: float = 150.0,
) -> np.ndarray:
    """Unit totals (half points of the candidate, 0 … grid(players)), shape (runs, count)."""
    if players == 2:
        strength = calibrated(elo, draw, bias_sd)
        bias = rng.normal(0.0, bias_sd, size=(runs, count))
        total = np.zeros((runs, count), dtype=int)
        for sign in (1, -1):  # the candidate in seat 0, then in seat 1
            p_win = _win(strength + sign * bias, draw)
            roll = rng.random((runs, count))
            total += np.where(roll < p_win, 2, np.where(roll < p_win + draw, 1, 0))
        return total
    # Plackett–Luce: utilities log-strength (+ seat advantage) + Gumbel; the higher ranks first.
    # A pair's order is logistic in the difference of their utilities, and two seats'
    # advantages differ by N(0, 2·bias_sd²): the strength is calibrated against that.
    strength = calibrated(elo, 0.0, math.sqrt(2) * bias_sd)
    seat = rng.normal(0.0, bias_sd, size=(runs, count, players)) * LOG10_SCALE
    total = np.zeros((runs, count), dtype=int)
    for rotation in range(players):  # the candidate in seat ``rotation``
        utility = seat + rng.gumbel(size=(runs, count, players))
        utility[..., rotation] += strength * LOG10_SCALE
        mine = utility[..., rotation : rotation + 1]
        total += 2 * (utility < mine).sum(axis=-1)
    return total


def rankings(rng: np.random.Generator, elos: np.ndarray, games: int, players: int) -> np.ndarray:
    """``games`` Plackett–Luce games among random ``players``-subsets of players with
    ratings ``elos``: per game the players' indices, winner first (shape (games, players))."""
    n = len(elos)
    if players > n:
        raise ValueError(f"{players} seats need at least {players} players, got {n}")
    chosen = np.argsort(rng.random((games, n)), axis=1)[:, :players]
    utility = elos[chosen] * LOG10_SCALE + rng.gumbel(size=(games, players))
    order = np.argsort(-utility, axis=1)
    return np.take_along_axis(chosen, order, axis=1)
