"""The post-training gauntlet's decision: a sequential probability ratio test against the
incumbent, floors against the baselines, and fail-closed on anything doubtful.

SPRT: H0 "the candidate is elo0 stronger" against H1 "elo1 stronger", with error rates
alpha (promoting under H0) and beta (rejecting under H1). The log-likelihood ratio uses
the normal approximation of the score on trinomial results (as Fishtest and cutechess
do): LLR = N (s1 − s0)(2x̄ − s0 − s1) / (2σ²), x̄ the mean score per game, σ² its
variance, s = 1 / (1 + 10^(−elo/400)). Accept H1 at LLR ≥ ln((1−β)/α), H0 at
LLR ≤ ln(β/(1−α)). Between ``min_games`` and ``max_games`` the test decides as soon as
a bound is crossed; at ``max_games`` the candidate is promoted only with a win rate of
at least ``final_min_win_rate`` and a likelihood of superiority of at least
``final_min_los``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum


class Decision(Enum):
    PROMOTE = "promote"
    REJECT = "reject"
    CONTINUE = "continue"


@dataclass(frozen=True)
class Tally:
    wins: int = 0
    losses: int = 0
    draws: int = 0

    @property
    def games(self) -> int:
        return self.wins + self.losses + self.draws

    @property
    def score(self) -> float:
        return (self.wins + 0.5 * self.draws) / self.games if self.games else 0.0

    def __add__(self, other: "Tally") -> "Tally":
        return Tally(self.wins + other.wins, self.losses + other.losses, self.draws + other.draws)


@dataclass(frozen=True)
class SprtRule:
    elo0: float = 0.0
    elo1: float = 20.0
    alpha: float = 0.05
    beta: float = 0.05
    min_games: int = 40
    max_games: int = 400
    final_min_win_rate: float = 0.55
    final_min_los: float = 0.95

    @property
    def bounds(self) -> tuple[float, float]:
        return math.log(self.beta / (1 - self.alpha)), math.log((1 - self.beta) / self.alpha)


def expected_score(elo: float) -> float:
    return 1.0 / (1.0 + 10 ** (-elo / 400.0))


def llr(tally: Tally, elo0: float, elo1: float) -> float:
    n = tally.games
    if n == 0:
        return 0.0
    x = tally.score
    var = (tally.wins * (1 - x) ** 2 + tally.draws * (0.5 - x) ** 2 + tally.losses * x ** 2) / n
    if var <= 1e-12:
        # Every game ended alike: use the variance of one game of a fair coin's split
        # between the hypotheses, so a clean sweep still counts as (strong) evidence.
        var = max(1e-3, 1.0 / (4 * n))
    s0, s1 = expected_score(elo0), expected_score(elo1)
    return n * (s1 - s0) * (2 * x - s0 - s1) / (2 * var)


def los(tally: Tally) -> float:
    """Likelihood of superiority: P(candidate stronger) from wins and losses."""
    decisive = tally.wins + tally.losses
    if decisive == 0:
        return 0.5
    return 0.5 * (1 + math.erf((tally.wins - tally.losses) / math.sqrt(2 * decisive)))


def sprt(tally: Tally, rule: SprtRule) -> Decision:
    if tally.games < rule.min_games:
        return Decision.CONTINUE
    value = llr(tally, rule.elo0, rule.elo1)
    lower, upper = rule.bounds
    if value >= upper:
        return Decision.PROMOTE
    if value <= lower:
        return Decision.REJECT
    if tally.games >= rule.max_games:
        ok = tally.score >= rule.final_min_win_rate and los(tally) >= rule.final_min_los
        return Decision.PROMOTE if ok else Decision.REJECT
    return Decision.CONTINUE


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    reason: str


def decide(
    incumbent: Tally | None,
    baselines: dict[str, Tally],
    floors: dict[str, float],
    rule: SprtRule,
    error: str = "",
) -> Verdict:
    """Fail-closed: an evaluation error, a baseline without games, or a floor not met
    rejects; with no incumbent (a config's first model) the floors alone decide."""
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
    if incumbent.games == 0:
        return Verdict(Decision.CONTINUE, "no games against the incumbent yet")
    decision = sprt(incumbent, rule)
    value = llr(incumbent, rule.elo0, rule.elo1)
    lower, upper = rule.bounds
    n, score = incumbent.games, incumbent.score
    if decision is Decision.CONTINUE:
        text = f"SPRT undecided (LLR {value:.2f}) after {n} games"
    elif lower < value < upper:  # decided by the final rule at the game limit
        verb = "promoted" if decision is Decision.PROMOTE else "rejected"
        text = (f"{verb} at the {n}-game limit: score {score:.2f}, LOS {los(incumbent):.2f} "
                f"(needs {rule.final_min_win_rate:.2f} and {rule.final_min_los:.2f})")
    elif decision is Decision.PROMOTE:
        text = f"SPRT accepts +{rule.elo1:g} Elo (LLR {value:.2f}) after {n} games, score {score:.2f}"
    else:
        text = f"SPRT rejects (LLR {value:.2f}, score {score:.2f}) after {n} games"
    return Verdict(decision, text)
