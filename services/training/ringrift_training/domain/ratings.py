"""Ratings fitted by maximum likelihood from every stored match of a config (Bradley–Terry
on the Elo scale, draws counting half a win each way), with one anchor player's rating
fixed. Not a sequential K-factor update: the same matches always give the same ratings,
whatever order they arrived in.

Each player also plays one virtual draw against the anchor (a weak prior), so a player
that has only won or only lost still gets a finite rating; it moves every rating by a few
Elo at most once there are dozens of real games.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SCALE = 400.0 / math.log(10.0)  # Elo points per natural-log unit of odds
PRIOR_DRAWS = 1.0


@dataclass(frozen=True)
class Result:
    player_a: str
    player_b: str
    wins: int
    losses: int
    draws: int


@dataclass(frozen=True)
class Fitted:
    player: str
    elo: float
    stderr: float
    games: int


def fit(results: list[Result], anchor: str, anchor_elo: float, iterations: int = 100) -> list[Fitted]:
    players = sorted({r.player_a for r in results} | {r.player_b for r in results} | {anchor})
    index = {p: i for i, p in enumerate(players)}
    n = len(players)
    # score[i, j]: points i took from j; games[i, j]: games between them.
    score = np.zeros((n, n))
    games = np.zeros((n, n))
    for r in results:
        a, b = index[r.player_a], index[r.player_b]
        total = r.wins + r.losses + r.draws
        score[a, b] += r.wins + 0.5 * r.draws
        score[b, a] += r.losses + 0.5 * r.draws
        games[a, b] += total
        games[b, a] += total
    real_games = games.sum(axis=1).astype(int)
    k = index[anchor]
    for i in range(n):
        if i != k:
            score[i, k] += 0.5 * PRIOR_DRAWS
            score[k, i] += 0.5 * PRIOR_DRAWS
            games[i, k] += PRIOR_DRAWS
            games[k, i] += PRIOR_DRAWS
    theta = np.zeros(n)
    free = np.array([i for i in range(n) if i != k])
    hessian = np.eye(max(1, len(free)))
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(theta[None, :] - theta[:, None]))  # P(i beats j)
        gradient = (score - games * p).sum(axis=1)
        weights = games * p * (1 - p)
        full = np.diag(weights.sum(axis=1)) - weights
        hessian = full[np.ix_(free, free)]
        if len(free) == 0:
            break
        step = np.linalg.solve(hessian, gradient[free])
        theta[free] += step
        if np.max(np.abs(step)) < 1e-9:
            break
    errors = np.zeros(n)
    if len(free):
        errors[free] = np.sqrt(np.clip(np.diag(np.linalg.inv(hessian)), 0, None))
    return [Fitted(p, anchor_elo + SCALE * theta[i], SCALE * errors[i], int(real_games[i])) for p, i in index.items()]
