"""Settings of the training pipeline: which configs the cluster trains, the self-play
scheduler's terms, training readiness and the gauntlet, and data sync. Part of the one
settings tree (``RingriftSettings.pipeline``, ``.selfplay``, ``.training``, ``.sync``);
defaults are BEHAVIOUR.md's."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from ringrift_contracts.ids import parse_config_key
from ringrift_runtime.settings import Section


def _config_keys(value: list[str]) -> list[str]:
    for key in value:
        parse_config_key(key)
    if len(set(value)) != len(value):
        raise ValueError("lists a config key twice")
    return value


class PipelineSettings(Section):
    """What the cluster trains."""

    # Config keys "<board>_<N>p" the cluster trains.
    configs: list[str] = Field(default_factory=lambda: ["square6_2p", "square6_3p", "square8_2p", "square8_4p"])
    # "production" applies the production rules (for example no self-play on nodes
    # under 64 GB RAM); "demo" scales training thresholds down for a laptop.
    profile: Literal["production", "demo"] = "production"
    # Boards that count as large (priority and Elo boost).
    large_boards: list[str] = Field(default_factory=lambda: ["square8", "square19", "hexagonal"])

    @field_validator("configs")
    @classmethod
    def _valid_keys(cls, value: list[str]) -> list[str]:
        return _config_keys(value)


class SelfplaySettings(Section):
    """SelfplayScheduler terms (BEHAVIOUR.md, SelfplayScheduler)."""

    # Base priority by config key; others get 1, +1 for a large board, +0.5 per player above 2.
    base_priority: dict[str, float] = Field(default_factory=dict)
    target_elo: float = 2000.0
    # A config below this many games is always served first.
    starvation_floor_games: int = Field(default=500, ge=0)
    # Below this many games a config is served first with starvation_soft_probability.
    starvation_soft_games: int = Field(default=3000, ge=0)
    starvation_soft_probability: float = Field(default=0.4, ge=0, le=1)
    # A plateau: the config's best rating gained less than this over the last N generations.
    plateau_generations: int = Field(default=3, ge=2)
    plateau_min_gain_elo: float = Field(default=10.0, ge=0)
    # Configs whose engine needs a GPU, and VRAM (GB) a config needs.
    gpu_only_configs: list[str] = Field(default_factory=list)
    min_vram_gb: dict[str, float] = Field(default_factory=dict)

    @field_validator("temperature_by_players")
    @classmethod
    def _valid_temperatures(cls, value: dict[int, float]) -> dict[int, float]:
        for players, temperature in value.items():
            if not 2 <= players <= 4 or temperature < 0:
                raise ValueError(
                    f"temperature_by_players maps a player count (2-4) to a temperature >= 0, not {players}: "
                    f"{temperature:g}"
                )
        return value

    @field_validator("gpu_only_configs")
    @classmethod
    def _valid_keys(cls, value: list[str]) -> list[str]:
        return _config_keys(value)

    # At most this many new jobs per node per cycle.
    max_top_up_per_node: int = Field(default=10, ge=1)
    # Multiplies every node's target (1: no backpressure).
    backpressure_factor: float = Field(default=1.0, gt=0, le=1)
    # Games per self-play job the scheduler submits.
    games_per_job: int = Field(default=50, ge=1)
    # Exploration temperature of self-play jobs: moves are drawn by softmax of their values
    # (outcomes in [-1, 1]) over this temperature. At 0.2 the reference model's square8_2p
    # self-play was close to random (the likeliest move drawn ~21 % of the time among ~8)
    # and every generation learned from the same near-random games; at 0.03 self-play
    # follows the model, games stay distinct and each generation gains on the one before.
    # With 3 players (square6_3p) 0.03 lost strength over generations where 0.2 held or
    # gained, so those keep 0.2, and 4 players (not measured) too (temperature_by_players;
    # BENCHMARKS.md, "Does the reference model keep learning?").
    temperature: float = Field(default=0.03, ge=0)
    # The temperature of configs with that many players, where it differs from the above.
    temperature_by_players: dict[int, float] = Field(default_factory=lambda: {3: 0.2, 4: 0.2})
    # Cost: each config's priority is multiplied by its expected Elo gain per CPU second
    # (gain per generation / CPU seconds per game, as StateService measures them) relative
    # to the geometric mean over the configs whose cost is measured, clamped to
    # [cost_factor_min, cost_factor_max]; 1 for a config not yet measured. The gain is the
    # rise of the config's best rating over its last cost_gain_generations generations per
    # generation (at least cost_gain_floor_elo), expected_gain_prior_elo until it has that
    # many. The starvation floor still comes first.
    cost_aware: bool = True
    cost_gain_generations: int = Field(default=3, ge=1)
    expected_gain_prior_elo: float = Field(default=100.0, gt=0)
    cost_gain_floor_elo: float = Field(default=5.0, gt=0)
    cost_factor_min: float = Field(default=0.33, gt=0, le=1)
    cost_factor_max: float = Field(default=3.0, ge=1)
    # "priority": the terms above decide (BEHAVIOUR.md). "round_robin": every config the
    # node may play is equally likely, whatever its terms (no starvation floor, no cost):
    # an equal share of self-play jobs per config, the baseline bench.training_efficiency
    # measures the scheduler against. Each job's config is drawn from the pick's seed, so
    # the share is equal in expectation (the scheduler keeps no state between picks).
    allocation: Literal["priority", "round_robin"] = "priority"

    def temperature_for(self, players: int) -> float:
        """Self-play's temperature for a config of that many players."""
        return self.temperature_by_players.get(players, self.temperature)


DEFAULT_FLOORS: dict[int, tuple[float, ...]] = {2: (0.85, 0.85), 3: (0.55, 0.45), 4: (0.45, 0.35)}


class TrainingSettings(Section):
    """TrainingCoordinator thresholds and the gauntlet (BEHAVIOUR.md, TrainingCoordinator)."""

    min_games: int = Field(default=2000, ge=1)
    incremental_games: int = Field(default=1000, ge=1)
    cooldown_seconds: float = Field(default=1800.0, ge=0)
    min_games_floor: int = Field(default=500, ge=1)
    incremental_games_floor: int = Field(default=200, ge=1)
    cooldown_min_seconds: float = Field(default=300.0, ge=0)
    cooldown_max_seconds: float = Field(default=7200.0, ge=0)
    # The demo profile's thresholds (replace the ones above, no floors, no scaling).
    demo_min_games: int = Field(default=300, ge=1)
    demo_incremental_games: int = Field(default=200, ge=1)
    demo_cooldown_seconds: float = Field(default=20.0, ge=0)
    # Idempotency of triggers: (config, games bucket, window).
    trigger_games_bucket: int = Field(default=1000, ge=1)
    trigger_window_seconds: int = Field(default=900, ge=1)
    # Dispatch.
    max_dispatch_nodes: int = Field(default=3, ge=1)
    reservation_seconds: int = Field(default=7200, ge=60)
    export_window_games: int = Field(default=2000, ge=1)
    epochs: int = Field(default=10, ge=1)
    # The gate against the incumbent: a GSPRT on units (one opening from every seat),
    # H0 "sprt_elo0 Elo stronger" against H1 "sprt_elo1 stronger", nominal error rates
    # alpha and beta, a look after every unit from gauntlet_min_units on, the cap in games
    # (a 4p unit is 4 games). Derivation (python -m bench.gauntlet_sprt, BENCHMARKS.md):
    # inside 400 games a width of 65 Elo is the narrowest whose median decision at both
    # hypotheses is under half the cap; nominal 0.04 keeps the measured rates, cap and
    # every-unit looks included, at or below 0.05.
    gauntlet_mode: Literal["gate", "nonregression"] = "gate"
    sprt_elo0: float = 0.0
    sprt_elo1: float = 65.0
    sprt_alpha: float = Field(default=0.04, gt=0, lt=0.5)
    sprt_beta: float = Field(default=0.04, gt=0, lt=0.5)
    # Non-regression mode (lczero style): promote unless the candidate is this much weaker
    # (H0 at −X, H1 at −X + the width sprt_elo1 − sprt_elo0: at 65, H1 is "no weaker").
    nonregression_elo: float = Field(default=65.0, gt=0)
    gauntlet_min_units: int = Field(default=10, ge=1)
    gauntlet_max_games: int = Field(default=400, ge=2)
    # Games per gauntlet job (rounded to whole units); the test looks after every unit.
    gauntlet_batch_games: int = Field(default=40, ge=2)
    # Games against each baseline (the floors), played once per candidate.
    gauntlet_baseline_games: int = Field(default=100, ge=1)
    # The fixed players every candidate and every promoted model is measured against,
    # weakest first (the last is the reference of a config's first model).
    baselines: list[str] = Field(default_factory=lambda: ["random", "heuristic"], min_length=1)
    # Baseline floors by player count: the win rate needed against each baseline, in order.
    baseline_floors: dict[int, tuple[float, ...]] = Field(default_factory=lambda: dict(DEFAULT_FLOORS))
    # Ratings: the anchor player of every config and its fixed rating.
    rating_anchor: str = "random"
    rating_anchor_elo: float = 1000.0
    # Data hygiene: an export that skips a node's games (they failed their checks, or
    # their file could not be read) is a strike against that node (NODE_GAMES_REJECTED);
    # quarantine_strikes strikes within quarantine_window_seconds quarantine it
    # (NodeSelector's default time; 0 strikes: never).
    quarantine_strikes: int = Field(default=3, ge=0)
    quarantine_window_seconds: float = Field(default=86400.0, gt=0)

    @model_validator(mode="after")
    def _a_floor_per_baseline(self) -> TrainingSettings:
        if self.sprt_elo1 <= self.sprt_elo0:
            raise ValueError(f"sprt_elo1 ({self.sprt_elo1:g}) must be above sprt_elo0 ({self.sprt_elo0:g})")
        for players, floors in self.baseline_floors.items():
            if len(floors) != len(self.baselines):
                raise ValueError(
                    f"baseline_floors[{players}] has {len(floors)} floors for {len(self.baselines)} baselines"
                )
        return self


class SyncSettings(Section):
    """SyncPlanner limits (BEHAVIOUR.md, SyncPlanner)."""

    manifest_timeout_seconds: float = Field(default=5.0, gt=0)
    manifest_cache_seconds: float = Field(default=60.0, ge=0)
    max_transfers_in: int = Field(default=2, ge=1)
    max_transfers_out: int = Field(default=2, ge=1)
    # Bandwidth budget per node in bytes/s (0: none), shared by its incoming transfers.
    bandwidth_bytes_per_second: int = Field(default=0, ge=0)
    # No transfer that would push a target's disk above this.
    disk_limit_percent: float = Field(default=85.0, gt=0, le=100)
    # Plans kept in memory for GetSyncPlan (their transfers are in StateService).
    plans_kept: int = Field(default=500, ge=1)
