"""Which config to play: every term of BEHAVIOUR.md's effective priority, computed for
every config, then a seeded weighted draw (replayable from its seed).

The inputs are a snapshot of StateService's records (config statistics, ratings, model
generations, evaluation outcomes); nothing here is remembered between calls, so a new
leader or replica decides the same way.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from ringrift_settings import PipelineSettings, SelfplaySettings, TrainingSettings

HOUR = 3600.0


@dataclass(frozen=True)
class ConfigState:
    config_key: str
    board: str
    players: int
    games_total: int = 0
    games_since_training: int = 0
    training_running: bool = False
    last_training_completed: float = 0.0  # unix seconds, 0: never
    best_elo: float | None = None  # best rating among this config's models (not baselines)
    # Best rating per generation, oldest first (plateau detection).
    elo_by_generation: tuple[float, ...] = ()
    # Evaluation outcomes, oldest first: (unix time, win rate, promoted).
    evaluations: tuple[tuple[float, float, bool], ...] = ()
    cpu_seconds_per_game: float = 0.0  # what one self-play game costs; 0 while unmeasured


@dataclass(frozen=True)
class NodeFacts:
    node_id: str
    has_gpu: bool
    vram_gb: float
    running_configs: frozenset[str] = frozenset()


@dataclass
class Terms:
    config_key: str
    base: float
    elo_boost: int = 0
    curriculum_boost: int = 0
    data_starvation_boost: int = 0
    bootstrap_boost: int = 0
    elo_gap_factor: float = 1.0
    plateau: bool = False
    promotion_penalty_factor: float = 1.0
    diversity_bonus: int = 0
    effective_priority: float = 0.0
    probability: float = 0.0
    games_total: int = 0
    starvation_floor: bool = False
    excluded_reason: str = ""
    cpu_seconds_per_game: float = 0.0
    expected_gain_elo: float = 0.0
    cost_factor: float = 1.0


def clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


def elo_boost(best_elo: float | None, large_board: bool, players: int) -> int:
    """min(3, (best − 1200) // 100) above 1200, +1 large board, +1 for 3–4 players, cap 5.
    ``best_elo`` is the best among models of exactly this config (board AND players)."""
    boost = 0
    if best_elo is not None and best_elo > 1200:
        boost = min(3, int((best_elo - 1200) // 100))
    boost += int(large_board) + int(players >= 3)
    return min(5, boost)


def curriculum_weight(evaluations: tuple[tuple[float, float, bool], ...]) -> float:
    """Folded over the config's evaluation win rates: > 0.75 → ×0.8 (floor 0.3);
    < 0.50 → ×1.3 (cap 2.5); otherwise halfway back to 1.0."""
    w = 1.0
    for _, win_rate, _ in evaluations:
        if win_rate > 0.75:
            w = max(0.3, w * 0.8)
        elif win_rate < 0.5:
            w = min(2.5, w * 1.3)
        else:
            w = 1.0 + (w - 1.0) * 0.5
    return w


def curriculum_boost(w: float) -> int:
    return clamp(int((w - 1) * 4), -2, 3)


def data_starvation_boost(state: ConfigState, now: float) -> int:
    if state.training_running:
        m = 0.5
    elif state.games_since_training < 25:
        m = 2.0
    elif state.games_since_training < 50:
        m = 1.5
    elif state.last_training_completed and now - state.last_training_completed < 1800:
        m = 1.3
    else:
        m = 1.0
    return clamp(int((m - 1) * 5), -3, 5)


def bootstrap_boost(games: int) -> int:
    for limit, boost in ((50, 100), (500, 75), (2000, 50), (5000, 25)):
        if games < limit:
            return boost
    return 0


def elo_gap_factor(best_elo: float | None, target: float, anchor: float) -> float:
    best = anchor if best_elo is None else best_elo
    if best >= target:
        return 0.3
    return min(3.0, 1.0 + (target - best) / 500.0)


def plateau(elo_by_generation: tuple[float, ...], generations: int, min_gain: float) -> bool:
    """The best rating of the last ``generations`` generations is less than ``min_gain``
    above the best rating before them."""
    if len(elo_by_generation) <= generations:
        return False
    before = max(elo_by_generation[:-generations])
    return max(elo_by_generation[-generations:]) - before < min_gain


def promotion_penalty(evaluations: tuple[tuple[float, float, bool], ...], now: float) -> float:
    """Failures (not promoted) in the last 24 h: 1 → ×0.7 for 30 min, 2 → ×0.5 for 1 h,
    3+ → ×0.3 for 2 h, each counted from the latest failure."""
    failures = [t for t, _, promoted in evaluations if not promoted and now - t < 24 * HOUR]
    if not failures:
        return 1.0
    since = now - max(failures)
    factor, lasts = {1: (0.7, 0.5 * HOUR), 2: (0.5, HOUR)}.get(len(failures), (0.3, 2 * HOUR))
    return factor if since < lasts else 1.0


def expected_gain(elo_by_generation: tuple[float, ...], generations: int, prior: float, floor: float) -> float:
    """Elo per generation the config's best rose over its last ``generations``
    generations (at least ``floor``); ``prior`` until it has more than that many."""
    if len(elo_by_generation) <= generations:
        return prior
    rise = max(elo_by_generation) - max(elo_by_generation[:-generations])
    return max(floor, rise / generations)


def cost_factors(terms: list[Terms], selfplay: SelfplaySettings) -> None:
    """Set each term's cost factor: its expected Elo gain per CPU second of self-play
    over the geometric mean of that rate among the configs whose cost is measured,
    clamped to the settings' bounds (1 for an unmeasured or excluded config, or when
    cost awareness is off)."""
    measured = [t for t in terms if t.cpu_seconds_per_game > 0 and not t.excluded_reason]
    if not selfplay.cost_aware or not measured:
        return
    rates = {t.config_key: t.expected_gain_elo / t.cpu_seconds_per_game for t in measured}
    mean = math.exp(sum(math.log(r) for r in rates.values()) / len(rates))
    for t in measured:
        t.cost_factor = min(selfplay.cost_factor_max, max(selfplay.cost_factor_min, rates[t.config_key] / mean))


def base_priority(
    config_key: str, board: str, players: int, selfplay: SelfplaySettings, pipeline: PipelineSettings
) -> float:
    if config_key in selfplay.base_priority:
        return selfplay.base_priority[config_key]
    return 1.0 + (1.0 if board in pipeline.large_boards else 0.0) + 0.5 * (players - 2)


def exclusion(state: ConfigState, node: NodeFacts | None, selfplay: SelfplaySettings) -> str:
    if node is None:
        return ""
    if state.config_key in selfplay.gpu_only_configs and not node.has_gpu:
        return "no GPU (the config's engine needs one)"
    need = selfplay.min_vram_gb.get(state.config_key, 0.0)
    if need and node.vram_gb < need:
        return f"VRAM {node.vram_gb:.0f} GB below the config's {need:.0f} GB"
    return ""


def compute_terms(
    states: list[ConfigState],
    node: NodeFacts | None,
    now: float,
    selfplay: SelfplaySettings,
    training: TrainingSettings,
    pipeline: PipelineSettings,
) -> list[Terms]:
    terms: list[Terms] = []
    for s in states:
        large = s.board in pipeline.large_boards
        t = Terms(
            s.config_key, base_priority(s.config_key, s.board, s.players, selfplay, pipeline), games_total=s.games_total
        )
        t.excluded_reason = exclusion(s, node, selfplay)
        t.elo_boost = elo_boost(s.best_elo, large, s.players)
        t.curriculum_boost = curriculum_boost(curriculum_weight(s.evaluations))
        t.data_starvation_boost = data_starvation_boost(s, now)
        t.bootstrap_boost = bootstrap_boost(s.games_total)
        t.diversity_bonus = 5 if node is not None and s.config_key not in node.running_configs else 0
        t.elo_gap_factor = elo_gap_factor(s.best_elo, selfplay.target_elo, training.rating_anchor_elo)
        t.plateau = plateau(s.elo_by_generation, selfplay.plateau_generations, selfplay.plateau_min_gain_elo)
        t.promotion_penalty_factor = promotion_penalty(s.evaluations, now)
        t.cpu_seconds_per_game = s.cpu_seconds_per_game
        t.expected_gain_elo = expected_gain(
            s.elo_by_generation,
            selfplay.cost_gain_generations,
            selfplay.expected_gain_prior_elo,
            selfplay.cost_gain_floor_elo,
        )
        terms.append(t)
    cost_factors(terms, selfplay)
    for t in terms:
        p = (
            t.base + t.elo_boost + t.curriculum_boost + t.data_starvation_boost + t.bootstrap_boost + t.diversity_bonus
        ) * t.elo_gap_factor
        if t.plateau:
            p = max(1.0, p / 2)
        p *= t.promotion_penalty_factor * t.cost_factor
        t.effective_priority = 0.0 if t.excluded_reason else max(0.1, p)
    return terms


@dataclass
class Pick:
    config_key: str
    seed: int
    terms: list[Terms] = field(default_factory=list)


def pick(terms: list[Terms], seed: int, selfplay: SelfplaySettings) -> Pick:
    """Starvation floor first (below ``starvation_floor_games`` always; below
    ``starvation_soft_games`` with ``starvation_soft_probability``), then a draw with
    probability proportional to effective priority, all from one seeded generator. With
    ``allocation = "round_robin"`` every eligible config is equally likely instead."""
    rng = random.Random(seed)
    eligible = [t for t in terms if not t.excluded_reason]
    if not eligible:
        return Pick("", seed, terms)
    if selfplay.allocation == "round_robin":
        for t in terms:
            t.probability = 1 / len(eligible) if t in eligible else 0.0
        return Pick(eligible[rng.randrange(len(eligible))].config_key, seed, terms)
    pool = [t for t in eligible if t.games_total < selfplay.starvation_floor_games]
    if not pool and rng.random() < selfplay.starvation_soft_probability:
        pool = [t for t in eligible if t.games_total < selfplay.starvation_soft_games]
    for t in pool:
        t.starvation_floor = True
    pool = pool or eligible
    total = sum(t.effective_priority for t in pool)
    for t in terms:
        t.probability = t.effective_priority / total if t in pool else 0.0
    draw = rng.random() * total
    for t in pool:
        draw -= t.effective_priority
        if draw < 0:
            return Pick(t.config_key, seed, terms)
    return Pick(pool[-1].config_key, seed, terms)
