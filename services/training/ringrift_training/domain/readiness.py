"""When a config is ready to train (BEHAVIOUR.md, TrainingCoordinator).

Ready when total games ≥ min_games, games since the last training ≥ incremental, the
cooldown has passed and no run is in progress. Thresholds scale with the number of GPU
training nodes (1 → 1.0, 2 → 0.7, ≤ 4 → 0.5, more → 0.35; floors apply). The cooldown
adapts to the data rate: 1800 s / rate factor, clamped, where the rate factor is how many
times over the incremental threshold the new games already are (0.25 .. 6). The demo
profile uses its own small thresholds instead, unscaled.
"""

from __future__ import annotations

from dataclasses import dataclass

from ringrift_settings import TrainingSettings


@dataclass(frozen=True)
class Thresholds:
    min_games: int
    incremental_games: int
    cooldown_seconds: float


@dataclass(frozen=True)
class Readiness:
    config_key: str
    ready: bool
    reason: str
    games_total: int
    games_since_training: int
    thresholds: Thresholds
    cooldown_ends_at: float
    in_progress: bool


def gpu_scale(gpu_nodes: int) -> float:
    if gpu_nodes <= 1:
        return 1.0
    if gpu_nodes == 2:
        return 0.7
    if gpu_nodes <= 4:
        return 0.5
    return 0.35


def thresholds(settings: TrainingSettings, profile: str, gpu_nodes: int, games_since_training: int) -> Thresholds:
    if profile == "demo":
        return Thresholds(settings.demo_min_games, settings.demo_incremental_games, settings.demo_cooldown_seconds)
    scale = gpu_scale(gpu_nodes)
    minimum = max(settings.min_games_floor, int(settings.min_games * scale))
    incremental = max(settings.incremental_games_floor, int(settings.incremental_games * scale))
    rate = min(6.0, max(0.25, games_since_training / incremental))
    cooldown = min(settings.cooldown_max_seconds, max(settings.cooldown_min_seconds, settings.cooldown_seconds / rate))
    return Thresholds(minimum, incremental, cooldown)


def readiness(
    config_key: str,
    games_total: int,
    games_since_training: int,
    last_training_started: float,
    in_progress: bool,
    now: float,
    limits: Thresholds,
) -> Readiness:
    ends = last_training_started + limits.cooldown_seconds if last_training_started else 0.0
    if in_progress:
        reason = "a training run is in progress"
    elif games_total < limits.min_games:
        reason = f"{games_total} games, needs {limits.min_games}"
    elif games_since_training < limits.incremental_games:
        reason = f"{games_since_training} new games since the last training, needs {limits.incremental_games}"
    elif now < ends:
        reason = f"cooling down for {ends - now:.0f} s more"
    else:
        reason = ""
    return Readiness(config_key, not reason, reason, games_total, games_since_training, limits, ends, in_progress)
