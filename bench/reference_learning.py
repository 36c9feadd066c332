"""Does the reference model keep learning?

Runs generations of the reference workload in one machine's processes, as the pipeline
runs them across a cluster (ringrift_reference.learning: self-play with the newest model,
the next trained from it on the newest window of games; self-play at the pipeline's
temperature for the config's player count), and measures every generation on
the opening book against generation 1, against the generation before it and against the
alpha-beta yardstick (a fixed player, so its column is an anchored scale; depth 4 by
default, ``--depth``: at depth 3 every generation already wins ~90 %).

    .venv/bin/python -m bench.reference_learning [--config square8_2p] [--generations 8]
        [--units 100] [--depth 4] [--workers 2] [--quick] [--json]

The defaults play the pipeline's amounts (2,000 games before the first model, 1,000 more
per generation, a window of the newest 2,000, 10 epochs). ``--quick`` plays a fifth of
that with 40-unit matches (a few minutes on 2 cores). ``--json`` prints one object:
``config``, ``generations`` (per generation: Elo against generation 1, the previous one
and alpha-beta, with a 95 % interval), ``gain_elo`` (the last generation against the
first), ``improving`` (every generation from the second on scores above 0.5 against
generation 1), ``alphabeta_gain_elo`` (the last generation's Elo against alpha-beta minus
the first's) and ``alphabeta_slope_elo`` (the least-squares slope of that Elo per
generation).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace

import numpy as np

from bench._common import machine
from ringrift_reference.game import parse_config
from ringrift_reference.learning import Schedule, elo, generations, unit_shares
from ringrift_reference.model import Model
from ringrift_reference.players import AlphaBetaPlayer, ModelPlayer, Player
from ringrift_settings.pipeline import SelfplaySettings


@dataclass
class Versus:
    share: float
    elo: float
    low: float
    high: float


@dataclass
class Generation:
    generation: int
    seconds: float
    vs_first: Versus | None
    vs_previous: Versus | None
    vs_alphabeta: Versus


def _player(config_key: str, who: np.ndarray | int) -> Player:
    """A model's player from its weights, or alpha-beta of that depth."""
    return AlphaBetaPlayer(who) if isinstance(who, int) else ModelPlayer(Model(config_key, who))


def _units(config_key: str, me: np.ndarray, opponent: np.ndarray | int, units: int, offset: int) -> list[float]:
    """Each unit's share for ``me`` against ``opponent`` (a unit of work for the pool)."""
    a, b = _player(config_key, me), _player(config_key, opponent)
    return unit_shares(config_key, a, b, units, seed=offset, offset=offset)


def versus(pool, config_key: str, me: np.ndarray, opponent: np.ndarray | int, units: int, offset: int) -> Versus:
    """The score of ``me`` over ``units`` book openings from every seat, its Elo and a 95 %
    interval from the spread of the units (a unit's games share an opening)."""
    players = parse_config(config_key)[1]
    chunks = 8
    sizes = [units // chunks + (i < units % chunks) for i in range(chunks)]
    starts = [offset + sum(sizes[:i]) for i in range(chunks)]
    jobs = [
        pool.submit(_units, config_key, me, opponent, size, start)
        for size, start in zip(sizes, starts, strict=True)
        if size
    ]
    shares = np.array([t for job in jobs for t in job.result()], dtype=float)
    share = float(shares.mean())
    half = 1.96 * float(shares.std(ddof=1)) / math.sqrt(len(shares)) if len(shares) > 1 else 0.5
    games = units * players
    return Versus(
        round(share, 4),
        round(elo(share, games), 1),
        round(elo(share - half, games), 1),
        round(elo(share + half, games), 1),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reference_learning", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="square8_2p")
    parser.add_argument("--generations", type=int, default=8)
    parser.add_argument("--units", type=int, default=100, help="openings per match (each from every seat)")
    parser.add_argument("--depth", type=int, default=4, help="the alpha-beta yardstick's depth")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a fifth of the games, 40-unit matches")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.generations < 2 or args.units < 2 or args.workers < 1 or not 1 <= args.depth <= 6:
        parser.error("--generations and --units must be at least 2, --workers at least 1, --depth from 1 to 6")
    # Self-play at the pipeline's temperature for the config's player count.
    selfplay = SelfplaySettings()
    temperature = selfplay.temperature_for(parse_config(args.config)[1])
    schedule = Schedule(args.config, generations=args.generations, seed=args.seed, temperature=temperature)
    if args.quick:
        schedule = replace(schedule, first_games=400, games_per_generation=200, window=400)
        args.units = min(args.units, 40)
    started = time.monotonic()
    rows: list[Generation] = []
    models: list[Model] = []
    with ProcessPoolExecutor(args.workers) as pool:
        for model in generations(schedule, pool.map, chunks=args.workers * 2):
            models.append(model)
            n = len(models)
            first = versus(pool, args.config, model.weights, models[0].weights, args.units, 0) if n > 1 else None
            previous = versus(pool, args.config, model.weights, models[-2].weights, args.units, 300) if n > 1 else None
            yardstick = versus(pool, args.config, model.weights, args.depth, args.units, 600)
            rows.append(Generation(n, round(time.monotonic() - started, 1), first, previous, yardstick))
            if not args.json:
                print(_line(rows[-1]), flush=True)
    improving = all(r.vs_first is not None and r.vs_first.share > 0.5 for r in rows[1:])
    gain = rows[-1].vs_first.elo if rows[-1].vs_first else 0.0
    anchored = [r.vs_alphabeta.elo for r in rows]
    ab_gain = round(anchored[-1] - anchored[0], 1)
    ab_slope = round(float(np.polyfit(np.arange(1, len(rows) + 1), anchored, 1)[0]), 1)
    if args.json:
        print(
            json.dumps(
                {
                    "config": args.config,
                    "schedule": asdict(schedule),
                    "units": args.units,
                    "generations": [asdict(r) for r in rows],
                    "gain_elo": gain,
                    "improving": improving,
                    "alphabeta_depth": args.depth,
                    "alphabeta_gain_elo": ab_gain,
                    "alphabeta_slope_elo": ab_slope,
                    "seconds": round(time.monotonic() - started, 1),
                }
            )
        )
        return 0
    print()
    print(
        f"{args.config}: generation {len(rows)} against generation 1: {gain:+.0f} Elo; every generation "
        f"from the second above generation 1: {'yes' if improving else 'no'}; against alpha-beta (depth "
        f"{args.depth}) {ab_gain:+.0f} Elo from the first to the last, {ab_slope:+.1f} a generation; {machine()}"
    )
    return 0


def _line(row: Generation) -> str:
    def show(v: Versus | None) -> str:
        return "-" if v is None else f"{v.share:.3f} ({v.elo:+.0f}, {v.low:+.0f}..{v.high:+.0f})"

    return (
        f"generation {row.generation} at {row.seconds:.0f} s: against generation 1 {show(row.vs_first)}, "
        f"the previous {show(row.vs_previous)}, alpha-beta {show(row.vs_alphabeta)}"
    )


if __name__ == "__main__":
    sys.exit(main())
