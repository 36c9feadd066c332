"""The post-training gauntlet's decision: a generalized sequential probability ratio test
(GSPRT) on game units against the incumbent, floors against the baselines, and
fail-closed on anything doubtful.

A **unit** is one opening played once from every seat rotation (two games in 2p, four in
4p). Its observation is the candidate's mean score against the field over those games,
counted in half points: each game gives 2·(opponents finishing below the candidate) +
(opponents tied with it), so a unit's total lies on the grid 0 … G with
G = 2·(players − 1)·players (0 … 4 in 2p: the pentanomial of fishtest). Games of one
opening are correlated (the opening favours a seat); the units are independent, so their
histogram carries the variance the test needs, for any player count.

The hypotheses concern the expected unit score s: H0 "s = L(elo0)", H1 "s = L(elo1)",
L(e) = 1 / (1 + 10^(−e/400)). Under Bradley–Terry, and under Plackett–Luce for 3–4
players (a ranking's pairwise marginals are Bradley–Terry), a candidate ``e`` Elo stronger
than an incumbent that fills the other seats scores L(e) against the field. The log-
likelihood ratio compares the multinomial of the unit totals with its maximum-likelihood
fit under each hypothesis (the constrained MLE p_i = p̂_i / (1 + λ(x_i − s)), as fishtest's
GSPRT does): LLR = N Σ p̂_i ln(p1_i / p0_i). Accept H1 at LLR ≥ ln((1−β)/α), H0 at LLR ≤
ln(β/(1−α)), looking after every unit from ``min_units`` on; at the cap (``max_games``)
the candidate is promoted iff LLR > 0 (the data lie nearer H1 than H0).

The defaults (TrainingSettings.gauntlet_*) come from ``python -m bench.gauntlet_sprt``:
with elo1 − elo0 = 65 and nominal α = β = 0.04 the measured error rates including the cap
and the look after every unit are at most 0.05, and the median decision at both
hypotheses takes well under half of the 400-game cap. A narrower interval cannot meet
both goals inside 400 games; a wider one buys speed with a coarser gate.

Non-regression mode (lczero style): H0 "elo = −X", H1 "elo = −X + width": a candidate is
promoted unless the test shows it is about X Elo weaker than the incumbent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

import numpy as np

REGULARIZE = 1e-3  # added to every cell of a histogram: empty cells keep the MLE finite
BISECTIONS = 60


class Decision(Enum):
    PROMOTE = "promote"
    REJECT = "reject"
    CONTINUE = "continue"


@dataclass(frozen=True)
class Tally:
    """Games won, lost and drawn (a win: the candidate alone on top). The floors against
    the baselines are win rates of this kind."""

    wins: int = 0
    losses: int = 0
    draws: int = 0

    @property
    def games(self) -> int:
        return self.wins + self.losses + self.draws

    @property
    def score(self) -> float:
        return (self.wins + 0.5 * self.draws) / self.games if self.games else 0.0


@dataclass(frozen=True)
class GateRule:
    elo0: float = 0.0
    elo1: float = 65.0
    alpha: float = 0.04
    beta: float = 0.04
    min_units: int = 10
    max_games: int = 400

    @property
    def bounds(self) -> tuple[float, float]:
        return math.log(self.beta / (1 - self.alpha)), math.log((1 - self.beta) / self.alpha)

    def max_units(self, players: int) -> int:
        return max(1, self.max_games // players)


def expected_score(elo: float) -> float:
    return 1.0 / (1.0 + 10 ** (-elo / 400.0))


def grid(players: int) -> int:
    """G: the largest half-point total of one unit."""
    if players < 2:
        raise ValueError(f"a gauntlet needs at least 2 players, got {players}")
    return 2 * (players - 1) * players


def _mle(p_hat: np.ndarray, x: np.ndarray, s: float) -> np.ndarray:
    """Per row, the distribution on support ``x`` nearest to ``p_hat`` (maximum likelihood)
    whose mean is ``s``: p_hat / (1 + λ(x − s)) with λ solving Σ p_hat (x − s)/(1 + λ(x − s)) = 0
    (decreasing in λ; bisection, vectorised over rows)."""
    d = x - s  # (K,)
    low = np.full(p_hat.shape[0], -1.0 / np.max(d) + 1e-12)
    high = np.full(p_hat.shape[0], -1.0 / np.min(d) - 1e-12)
    for _ in range(BISECTIONS):
        mid = 0.5 * (low + high)
        value = (p_hat * d / (1.0 + mid[:, None] * d)).sum(axis=1)
        positive = value > 0
        low = np.where(positive, mid, low)
        high = np.where(positive, high, mid)
    lam = 0.5 * (low + high)
    p = p_hat / (1.0 + lam[:, None] * d)
    result: np.ndarray = p / p.sum(axis=1, keepdims=True)
    return result


def llr(counts: np.ndarray, elo0: float, elo1: float) -> np.ndarray:
    """Log-likelihood ratio of H1 over H0 for each row of unit histograms ``counts``
    (shape (..., G + 1)); 0 for a row without units."""
    counts = np.asarray(counts, dtype=float)
    shape = counts.shape[:-1]
    rows = counts.reshape(-1, counts.shape[-1])
    g = rows.shape[1] - 1
    x = np.arange(g + 1) / g
    n = rows.sum(axis=1)
    regular = rows + REGULARIZE
    p_hat = regular / regular.sum(axis=1, keepdims=True)
    p0 = _mle(p_hat, x, expected_score(elo0))
    p1 = _mle(p_hat, x, expected_score(elo1))
    value: np.ndarray = n * (p_hat * np.log(p1 / p0)).sum(axis=1)
    return value.reshape(shape)


@dataclass(frozen=True)
class Outcome:
    decision: Decision
    units: int  # units the decision rests on (all of them when it continues)
    llr: float
    score: float  # mean unit score of those units


def sequential_many(units: np.ndarray, players: int, rule: GateRule) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The test applied after every unit of each row of ``units`` (shape (runs, n), unit
    totals in the order played): per row the decision (1 promote, −1 reject, 0 continue),
    the units it rests on, and the LLR there. The first crossing decides (units played
    after it change nothing); at the cap, LLR > 0 promotes."""
    g = grid(players)
    units = np.asarray(units, dtype=int)
    if units.ndim != 2:
        raise ValueError("units must be a 2-d array (runs, units)")
    if units.size and (units.min() < 0 or units.max() > g):
        raise ValueError(f"unit totals must lie in 0..{g} for {players} players")
    cap = rule.max_units(players)
    units = units[:, :cap]
    runs, n = units.shape
    if n == 0:
        return np.zeros(runs, dtype=int), np.zeros(runs, dtype=int), np.zeros(runs)
    onehot = np.zeros((runs, n, g + 1))
    onehot[np.arange(runs)[:, None], np.arange(n)[None, :], units] = 1
    values = llr(np.cumsum(onehot, axis=1), rule.elo0, rule.elo1)  # (runs, n)
    lower, upper = rule.bounds
    looked = np.arange(n) + 1 >= rule.min_units
    crossed = looked & ((values >= upper) | (values <= lower))
    first = np.where(crossed.any(axis=1), crossed.argmax(axis=1), n - 1)
    at = values[np.arange(runs), first]
    decided = crossed.any(axis=1)
    decision = np.where(decided, np.where(at >= upper, 1, -1), 0)
    if n >= cap:  # the cap: the side of zero decides
        decision = np.where(decided, decision, np.where(at > 0, 1, -1))
    return decision, first + 1, at


def sequential(units: list[int], players: int, rule: GateRule) -> Outcome:
    """``sequential_many`` for one gauntlet."""
    if not units:
        return Outcome(Decision.CONTINUE, 0, 0.0, 0.0)
    decision, used, value = sequential_many(np.asarray([units]), players, rule)
    k = int(used[0])
    score = float(np.sum(units[:k]) / (grid(players) * k))
    verdict = {1: Decision.PROMOTE, -1: Decision.REJECT, 0: Decision.CONTINUE}[int(decision[0])]
    return Outcome(verdict, k, float(value[0]), score)


def los(tally: Tally) -> float:
    """Likelihood of superiority: P(candidate stronger) from wins and losses."""
    decisive = tally.wins + tally.losses
    if decisive == 0:
        return 0.5
    return 0.5 * (1 + math.erf((tally.wins - tally.losses) / math.sqrt(2 * decisive)))


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    reason: str


def decide(
    incumbent: list[int] | None,
    players: int,
    baselines: dict[str, Tally],
    floors: dict[str, float],
    rule: GateRule,
    error: str = "",
) -> Verdict:
    """Fail-closed: an evaluation error, a baseline without games, or a floor not met
    rejects; with no incumbent (a config's first model) the floors alone decide.
    ``incumbent`` holds the unit totals against the incumbent in the order played."""
    if error:
        return Verdict(Decision.REJECT, f"evaluation failed: {error}")
    for name, floor in floors.items():
        tally = baselines.get(name)
        if tally is None or tally.games == 0:
            return Verdict(Decision.REJECT, f"no games against {name}")
        if tally.score < floor:
            return Verdict(Decision.REJECT, f"{tally.score:.2f} against {name} is below the floor {floor:.2f}")
    if incumbent is None:
        return Verdict(Decision.PROMOTE, "first model of the config; baseline floors met")
    if not incumbent:
        return Verdict(Decision.CONTINUE, "no games against the incumbent yet")
    outcome = sequential(incumbent, players, rule)
    games = outcome.units * players
    hypotheses = f"GSPRT({rule.elo0:+g}, {rule.elo1:+g})"
    if outcome.decision is Decision.CONTINUE:
        text = f"{hypotheses} undecided (LLR {outcome.llr:.2f}) after {games} games"
    elif rule.bounds[0] < outcome.llr < rule.bounds[1]:  # decided at the cap
        verb = "promoted" if outcome.decision is Decision.PROMOTE else "rejected"
        text = f"{verb} at the {games}-game cap: LLR {outcome.llr:.2f}, score {outcome.score:.3f}"
    elif outcome.decision is Decision.PROMOTE:
        text = f"{hypotheses} accepts H1 (LLR {outcome.llr:.2f}) after {games} games, score {outcome.score:.3f}"
    else:
        text = f"{hypotheses} accepts H0 (LLR {outcome.llr:.2f}) after {games} games, score {outcome.score:.3f}"
    return Verdict(outcome.decision, text)
