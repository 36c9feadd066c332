"""What does the cost factor buy? A simulation of the scheduler's own allocation code.

Three configs learn along known curves: a config's true strength after g self-play games
is ceiling * (1 - exp(-g / scale)), and a game costs it a fixed number of CPU seconds
(square8 several times square6, as measured on the reference workload). The cluster
spends one CPU budget on self-play jobs of 50 games; a config trains after 2,000 games and
then every 1,000, and each generation is rated at its true strength plus rating noise.
Each job's config is drawn by the project's own code (ringrift_selfplay.domain.priority:
compute_terms then pick, seeded), with the cost factor on and off, and beside them a
round-robin over the configs. Printed per arm: Elo gained (the sum of the configs' true
gains) per CPU-hour, its ratio to round-robin with a bootstrap 95 % interval over runs,
and each config's gain relative to its round-robin gain.

The curves are a model, not a measurement: the real pipeline's figures come from
``bench.training_efficiency``. Use this to see how the rule behaves and to choose its
bounds. Beside the arms, the best any allocation could do under the same fairness rule
(every config at least 80 % of its round-robin gain), found knowing the curves: the
ceiling of the ratio for these curves and budget.

    .venv/bin/python -m bench.allocation_sim [--runs 100] [--budget-hours 40] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from dataclasses import dataclass, replace

import numpy as np

from bench._common import machine
from ringrift_selfplay.domain.priority import ConfigState, compute_terms, pick
from ringrift_settings import PipelineSettings, SelfplaySettings, TrainingSettings


@dataclass(frozen=True)
class Curve:
    cost: float  # CPU seconds per game
    ceiling: float  # Elo the config can gain
    scale: float  # games to gain 63 % of it


CURVES = {
    "square6_2p": Curve(cost=1.0, ceiling=900.0, scale=30_000.0),
    "square8_2p": Curve(cost=4.5, ceiling=1200.0, scale=60_000.0),
    "square6_3p": Curve(cost=1.6, ceiling=800.0, scale=40_000.0),
}
GAMES_PER_JOB = 50
MIN_GAMES, INCREMENTAL = 2000, 1000
RATING_NOISE = 25.0
ANCHOR = 1000.0


def strength(curve: Curve, games: int) -> float:
    return curve.ceiling * (1.0 - math.exp(-games / curve.scale))


def run(arm: str, budget: float, seed: int, selfplay: SelfplaySettings) -> dict[str, float]:
    """Elo each config gained (true strength) when ``budget`` CPU seconds were spent."""
    rng = random.Random(seed)
    pipeline = PipelineSettings(configs=list(CURVES), profile="production")
    training = TrainingSettings()
    states = {k: ConfigState(k, k.split("_")[0], int(k[-2])) for k in CURVES}
    trained_at = dict.fromkeys(CURVES, 0)
    spent, turn = 0.0, 0
    keys = list(CURVES)
    while spent < budget:
        if arm == "round-robin":
            chosen = keys[turn % len(keys)]
            turn += 1
        else:
            terms = compute_terms(list(states.values()), None, 0.0, selfplay, training, pipeline)
            chosen = pick(terms, rng.getrandbits(32), selfplay).config_key
        curve, s = CURVES[chosen], states[chosen]
        spent += GAMES_PER_JOB * curve.cost
        games = s.games_total + GAMES_PER_JOB
        s = replace(s, games_total=games, games_since_training=s.games_since_training + GAMES_PER_JOB)
        s = replace(s, cpu_seconds_per_game=curve.cost)  # measured after its first job
        due = (trained_at[chosen] == 0 and games >= MIN_GAMES) or (
            trained_at[chosen] and games - trained_at[chosen] >= INCREMENTAL
        )
        if due:
            trained_at[chosen] = games
            rated = ANCHOR + strength(curve, games) + rng.gauss(0.0, RATING_NOISE)
            s = replace(
                s,
                games_since_training=0,
                elo_by_generation=(*s.elo_by_generation, rated),
                best_elo=max(rated, s.best_elo or rated),
            )
        states[chosen] = s
    return {k: strength(CURVES[k], states[k].games_total) for k in CURVES}


def best_split(budget: float, floor: float = 0.8, steps: int = 200) -> tuple[float, dict[str, float], dict[str, float]]:
    """The most any allocation can buy under the same rule of fairness: the split of the
    CPU budget over the configs (on a grid of 1/``steps``) that gains the most true Elo
    while every config keeps at least ``floor`` of its round-robin gain, found knowing the
    curves. Returns its ratio to round-robin (equal games per config), its CPU shares and
    each config's gain relative to its round-robin gain. With concave curves no schedule
    over time beats the best fixed split, so this bounds every allocator."""
    keys = list(CURVES)
    assert len(keys) == 3
    games = budget / sum(c.cost for c in CURVES.values())
    fair = {k: strength(CURVES[k], int(games)) for k in keys}
    best: tuple[float, dict[str, float], dict[str, float]] = (0.0, {}, {})
    for i in range(steps + 1):
        for j in range(steps + 1 - i):
            shares = dict(zip(keys, (i / steps, j / steps, (steps - i - j) / steps), strict=True))
            gained = {k: strength(CURVES[k], int(shares[k] * budget / CURVES[k].cost)) for k in keys}
            if all(gained[k] >= floor * fair[k] for k in keys) and sum(gained.values()) > best[0]:
                best = (sum(gained.values()), shares, gained)
    total, shares, gained = best
    return total / sum(fair.values()), shares, {k: gained[k] / fair[k] for k in keys}


def bootstrap_ratio(a: np.ndarray, b: np.ndarray, rng: np.random.Generator, n: int = 2000) -> tuple[float, float]:
    """95 % interval of mean(a) / mean(b), runs resampled."""
    ia = rng.integers(0, len(a), (n, len(a)))
    ib = rng.integers(0, len(b), (n, len(b)))
    ratios = a[ia].mean(axis=1) / b[ib].mean(axis=1)
    low, high = np.percentile(ratios, [2.5, 97.5])
    return float(low), float(high)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.allocation_sim", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--budget-hours", type=float, default=40.0, help="CPU-hours of self-play per run")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--quick", action="store_true", help="25 runs (the default 100 take ~10 s)")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs = 25
    budget = args.budget_hours * 3600.0
    arms = {
        "round-robin": SelfplaySettings(),
        "scheduler, no cost factor": SelfplaySettings(cost_aware=False),
        "scheduler with cost factor": SelfplaySettings(),
    }
    gains = {
        arm: np.array([[g for g in run(arm, budget, seed, settings).values()] for seed in range(args.runs)])
        for arm, settings in arms.items()
    }
    rng = np.random.default_rng(7)
    base = gains["round-robin"]
    report: dict[str, object] = {"budget_cpu_hours": args.budget_hours, "runs": args.runs, "arms": {}}
    for arm, g in gains.items():
        total = g.sum(axis=1)
        low, high = bootstrap_ratio(total, base.sum(axis=1), rng)
        per_config = {k: float(g[:, i].mean() / base[:, i].mean()) for i, k in enumerate(CURVES)}
        report["arms"][arm] = {  # type: ignore[index]
            "elo_per_cpu_hour": float(total.mean() / args.budget_hours),
            "ratio_to_round_robin": float(total.mean() / base.sum(axis=1).mean()),
            "ratio_ci95": [low, high],
            "config_gain_vs_round_robin": per_config,
        }
    ceiling, shares, per_config = best_split(budget)
    report["best_split"] = {
        "ratio_to_round_robin": ceiling,
        "cpu_shares": shares,
        "config_gain_vs_round_robin": per_config,
    }
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"# allocation simulation: {args.runs} runs of {args.budget_hours:g} CPU-hours ({machine()})")
    print(
        "# curves: "
        + ", ".join(f"{k} {c.cost:g} s/game, +{c.ceiling:g} Elo / {c.scale:g} games" for k, c in CURVES.items())
    )
    print(f"{'arm':<28} {'Elo/CPU-h':>9} {'ratio':>6} {'95% CI':>15}  per config vs round-robin")
    for arm, row in report["arms"].items():  # type: ignore[attr-defined]
        low, high = row["ratio_ci95"]
        configs = " ".join(f"{k} {v:.2f}" for k, v in row["config_gain_vs_round_robin"].items())
        ratio = row["ratio_to_round_robin"]
        print(f"{arm:<28} {row['elo_per_cpu_hour']:>9.1f} {ratio:>6.2f} [{low:.2f}, {high:.2f}]  {configs}")
    configs = " ".join(f"{k} {v:.2f}" for k, v in per_config.items())
    split = ", ".join(f"{k} {v:.0%}" for k, v in shares.items())
    print(f"{'best fixed split (oracle)':<28} {'':>9} {ceiling:>6.2f} {'':>15}  {configs} (CPU: {split})")
    print(
        "# the oracle knows the curves and keeps every config at 80 % of its round-robin gain: no allocator "
        "under that rule can do better"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
