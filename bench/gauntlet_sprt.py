"""What does the gate cost and how often is it wrong?

Simulates gauntlets against the incumbent over a grid of true Elo differences and runs the
project's own decision code (ringrift_training.domain.gauntlet.sequential_many, the rule
the TrainingCoordinator applies) on every one: per difference the median, mean and 90th
percentile of games to a decision and P(promote), beside a fixed-budget test of the same
cap (all units played, promote iff LLR > 0, the same rule the gate applies at its cap).
Games are simulated by ringrift_training.domain.simulation: units of one opening from
every seat, openings that favour a seat, draws.

    .venv/bin/python -m bench.gauntlet_sprt [--runs 2000] [--players 2] [--json]

``--json`` prints one object: cap, median_games_h0, median_games_h1, alpha, beta (the
measured error rates at the rule's hypotheses, the cap included) and the grid.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass

import numpy as np

from bench._common import machine
from ringrift_settings import TrainingSettings
from ringrift_training.domain import simulation
from ringrift_training.domain.gauntlet import GateRule, sequential_many
from ringrift_training.domain.stages import gate_rule

GRID = (-100.0, -50.0, -20.0, 0.0, 20.0, 35.0, 50.0, 65.0, 100.0, 200.0)


@dataclass(frozen=True)
class Row:
    elo: float
    median_games: float
    mean_games: float
    p90_games: float
    p_promote: float
    p_cap: float
    fixed_p_promote: float


def measure(
    rule: GateRule, elo: float, runs: int, players: int, seed: int, draw: float = 0.1, bias_sd: float = 150.0
) -> Row:
    rng = np.random.default_rng([seed, int(elo * 10) + 100_000, players])
    cap = rule.max_units(players)
    units = simulation.units(rng, elo, runs, cap, players=players, draw=draw, bias_sd=bias_sd)
    decision, used, _ = sequential_many(units, players, rule)
    fixed = GateRule(rule.elo0, rule.elo1, rule.alpha, rule.beta, min_units=cap, max_games=rule.max_games)
    fixed_decision, _, _ = sequential_many(units, players, fixed)
    games = used * players
    return Row(
        elo,
        float(np.median(games)),
        float(games.mean()),
        float(np.percentile(games, 90)),
        float((decision == 1).mean()),
        float((used >= cap).mean()),
        float((fixed_decision == 1).mean()),
    )


def error_rates(rule: GateRule, runs: int, players: int = 2, seed: int = 7, **game) -> tuple[Row, Row]:
    """The rows at H0 (P(promote) = α) and at H1 (1 − P(promote) = β)."""
    return (
        measure(rule, rule.elo0, runs, players, seed, **game),
        measure(rule, rule.elo1, runs, players, seed, **game),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gauntlet_sprt", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2000, help="simulated gauntlets per Elo difference")
    parser.add_argument("--players", type=int, default=2, choices=(2, 3, 4))
    parser.add_argument("--draw", type=float, default=0.1, help="draw rate of a game (2 players)")
    parser.add_argument("--bias", type=float, default=150.0, help="sd of an opening's advantage to a seat, Elo")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--quick", action="store_true", help="500 gauntlets per difference (the default run takes ~10 s)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.runs = 500
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    rule = gate_rule(TrainingSettings())
    game = {"draw": args.draw if args.players == 2 else 0.0, "bias_sd": args.bias}
    h0, h1 = error_rates(rule, args.runs, args.players, args.seed, **game)
    if args.json:
        print(
            json.dumps(
                {
                    "cap": rule.max_games,
                    "players": args.players,
                    "elo0": rule.elo0,
                    "elo1": rule.elo1,
                    "median_games_h0": h0.median_games,
                    "median_games_h1": h1.median_games,
                    "alpha": h0.p_promote,
                    "beta": 1 - h1.p_promote,
                    "runs": args.runs,
                }
            )
        )
        return 0
    rows = [measure(rule, elo, args.runs, args.players, args.seed, **game) for elo in GRID]
    print(f"# Gauntlet gate: GSPRT({rule.elo0:+g}, {rule.elo1:+g}), nominal α = {rule.alpha}, β = {rule.beta}")
    print(
        f"cap {rule.max_games} games ({rule.max_units(args.players)} units of {args.players} games), "
        f"looks after every unit from {rule.min_units}; {args.runs} gauntlets per row, "
        f"draws {game['draw']:.0%}, opening advantage sd {args.bias:g} Elo; {machine()}"
    )
    print()
    print("| true Elo | median games | mean | p90 | P(promote) | P(reach cap) | fixed-budget P(promote) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r.elo:+g} | {r.median_games:.0f} | {r.mean_games:.0f} | {r.p90_games:.0f} | "
            f"{r.p_promote:.3f} | {r.p_cap:.3f} | {r.fixed_p_promote:.3f} |"
        )
    print()
    print(
        f"measured at the hypotheses: α = {h0.p_promote:.3f}, β = {1 - h1.p_promote:.3f}; "
        f"median games {h0.median_games:.0f} at H0, {h1.median_games:.0f} at H1 "
        f"(fixed budget: {rule.max_games} games)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
