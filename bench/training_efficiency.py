"""Does the self-play scheduler buy more Elo per CPU-hour than round-robin?

Runs the real pipeline twice on a local cluster started as `ringrift up` starts it (etcd,
StateService, the managers, two gateways, three agents playing the reference workload;
the demo profile's configs and thresholds), each time from nothing until the cluster has
spent the same CPU budget: once with the scheduler (``selfplay.allocation = priority``,
BEHAVIOUR.md's terms with the cost factor) and once with round-robin
(``selfplay.allocation = round_robin``: every config equally likely for every self-play
job). Everything else, training thresholds and gauntlets included, is the same. The
budget is the CPU time of the cluster's whole process tree (etcd, every service, the
agents and the jobs they run, counted from when the cluster is ready).

Then each run's final best model of every config is rated on the opening book against a
fixed panel: random (0 Elo, the anchor; generation 0 plays at random), the heuristic and
an alpha-beta player of fixed depth (``--depth``), whose ratings are fitted from their
own matches. A config's gain is its final best's rating (0 when nothing was promoted);
a run's efficiency its summed gain over the configs per CPU-hour it spent. Printed: per
config the generations, games and gain of each run, and the ratio of the scheduler's
efficiency to round-robin's with a bootstrap 95 % interval (units resampled within every
match). The interval covers the rating's noise only: each mode trains once, so a second
pair of runs may land elsewhere (say so when quoting the figure).

    .venv/bin/python -m bench.training_efficiency [--quick] [--cpu-hours 1.0] [--units 150]
        [--depth 3] [--configs square6_2p,square8_2p,square6_3p] [--workers 2] [--json]

``--quick``: 0.33 CPU-hours per run and 40-unit matches (about 22 minutes on 2 cores; the
default 1 CPU-hour a run about 65).
``--json`` prints one object: ``budget_cpu_seconds``, ``runs`` (per mode: cpu_seconds,
wall_seconds, per config generations, games, best_model, elo, low, high), ``ratio``,
``ratio_low``, ``ratio_high``, ``config_ratios`` and ``goal_met`` (ratio ≥ 1.5 and no
config below 0.8 of its round-robin gain).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field

import numpy as np
import psutil

from bench._cluster import cluster_pids, gateway_client, local_cluster, wait_ready
from bench._common import machine
from ringrift.common.v1 import common_pb2 as C
from ringrift_cli.local_cluster import DEMO_CONFIGS, DEMO_ENV, LocalCluster
from ringrift_reference.learning import unit_shares
from ringrift_reference.model import Model
from ringrift_reference.players import BASELINES, AlphaBetaPlayer, ModelPlayer, Player, baseline
from ringrift_training.domain.gauntlet import expected_score

MODES = {"scheduler": "priority", "round_robin": "round_robin"}
GOAL_RATIO = 1.5
GOAL_CONFIG_SHARE = 0.8
POLL_SECONDS = 5.0
PANEL = BASELINES  # random, the heuristic, alpha-beta (of --depth)


# ---------------------------------------------------------------- the cluster's CPU time


def tree_cpu_seconds(roots: list[psutil.Process]) -> float:
    """CPU seconds of every root process and of all its descendants: a live process's own
    time and what its reaped children used (a finished job's time sits in its wrapper's or
    agent's children times once reaped), each process counted once."""
    total = 0.0
    seen: set[int] = set()
    for root in roots:
        try:
            family = [root, *root.children(recursive=True)]
        except psutil.Error:
            continue
        for process in family:
            if process.pid in seen:
                continue
            seen.add(process.pid)
            try:
                t = process.cpu_times()
            except psutil.Error:
                continue
            total += t.user + t.system + t.children_user + t.children_system
    return total


@dataclass
class ConfigResult:
    generations: int = 0
    games: int = 0
    best_model: str = ""
    elo: float = 0.0
    low: float = 0.0
    high: float = 0.0


@dataclass
class Run:
    mode: str
    cpu_seconds: float = 0.0
    wall_seconds: float = 0.0
    configs: dict[str, ConfigResult] = field(default_factory=dict)
    weights: dict[str, np.ndarray] = field(default_factory=dict)  # the final bests (none: generation 0)


def _model_weights(cluster: LocalCluster, relative: str) -> np.ndarray:
    """The weights of a model file from whichever agent's data directory holds it."""
    for data in sorted((cluster.root / "data").iterdir()):
        path = data / relative
        if path.is_file():
            return Model.load(path).weights
    raise SystemExit(f"model file {relative} is on no agent of the local cluster")


async def _train(cluster: LocalCluster, mode: str, configs: list[str], budget: float, wall_limit: float) -> Run:
    client = gateway_client(cluster)
    try:
        await wait_ready(client, cluster.agents, timeout=120)
        roots = [psutil.Process(pid) for pid in cluster_pids(cluster).values() if pid]
        start_cpu, started = tree_cpu_seconds(roots), time.monotonic()
        reported = 0.0
        run = Run(mode)
        while True:
            await asyncio.sleep(POLL_SECONDS)
            run.cpu_seconds = tree_cpu_seconds(roots) - start_cpu
            run.wall_seconds = time.monotonic() - started
            if run.wall_seconds - reported >= 60:
                reported = run.wall_seconds
                promoted = await client.list_models(statuses=[C.MODEL_STATUS_PROMOTED], timeout=30)
                counts = {key: sum(m.config_key == key for m in promoted.models) for key in configs}
                print(
                    f"  {mode}: {run.cpu_seconds:.0f} of {budget:.0f} CPU s in {run.wall_seconds:.0f} s; "
                    f"promoted {counts}",
                    file=sys.stderr,
                    flush=True,
                )
            if run.cpu_seconds >= budget:
                break
            if run.wall_seconds > wall_limit:
                print(f"  {mode}: stopped by the wall-clock limit ({wall_limit:.0f} s)", file=sys.stderr)
                break
        listed = await client.list_models(timeout=30)
        terms = {t.config_key: t for t in (await client.explain_allocation(timeout=30)).terms}
        by_id = {m.model_id: m for m in listed.models}
        for key in configs:
            result = ConfigResult(games=terms[key].games_total if key in terms else 0)
            best = by_id.get(listed.best_model_by_config.get(key, ""))
            if best is not None and best.path:
                result.best_model, result.generations = best.model_id, best.generation
                run.weights[key] = _model_weights(cluster, best.path)
            run.configs[key] = result
        return run
    finally:
        await client.close()


def train(mode: str, configs: list[str], budget: float, cores: int) -> Run:
    env = {
        **DEMO_ENV,
        "RINGRIFT_PIPELINE__CONFIGS": json.dumps(configs),
        "RINGRIFT_SELFPLAY__ALLOCATION": MODES[mode],
    }
    print(f"{mode}: a local cluster until it has spent {budget:.0f} CPU seconds", file=sys.stderr, flush=True)
    with local_cluster(env=env) as cluster:
        # Twice the time the budget takes on every core: a cluster that idles is reported.
        return asyncio.run(_train(cluster, mode, configs, budget, wall_limit=2 * budget / cores + 120))


# ---------------------------------------------------------------- ratings on a fixed panel


def _player(config_key: str, who: str | np.ndarray, depth: int) -> Player:
    if isinstance(who, np.ndarray):
        return ModelPlayer(Model(config_key, who))
    return AlphaBetaPlayer(depth) if who == "alphabeta" else baseline(who)


def _shares(config_key: str, me: str | np.ndarray, opponent: str, depth: int, units: int, offset: int) -> list[float]:
    return unit_shares(
        config_key, _player(config_key, me, depth), _player(config_key, opponent, depth), units, offset, offset
    )


def fit_rating(matches: list[tuple[float, float, int]]) -> float:
    """The maximum-likelihood rating of one player from its matches against opponents of
    known rating, each given as (opponent's rating, mean share, units), with one drawn
    unit added to every match (so a clean sweep stays finite: a mild shrink)."""
    if not matches:
        return 0.0
    ratings = [r for r, _, _ in matches]
    points = sum(s * n + 0.5 for _, s, n in matches)
    low, high = min(ratings) - 3000.0, max(ratings) + 3000.0
    for _ in range(40):  # the score's derivative falls as the rating rises: bisection
        mid = (low + high) / 2
        won = sum((n + 1.0) * expected_score(mid - r) for r, _, n in matches)
        if points > won:
            low = mid
        else:
            high = mid
    return (low + high) / 2


@dataclass
class Panel:
    """Every match of one config, as per-unit shares: the panel's own and each rated
    model's against every panel member."""

    config_key: str
    own: dict[tuple[str, str], np.ndarray]  # (player, opponent) -> shares of player
    models: dict[str, dict[str, np.ndarray]]  # label -> panel member -> shares of the model

    def ratings(self, draw: np.random.Generator | None = None) -> dict[str, float]:
        """Fitted ratings (random 0): the panel's, then every model's; with ``draw``, on
        units resampled with replacement within every match (one bootstrap sample)."""

        def mean(shares: np.ndarray) -> float:
            if draw is None:
                return float(shares.mean())
            return float(shares[draw.integers(0, len(shares), len(shares))].mean())

        rated = {"random": 0.0}
        rated["heuristic"] = fit_rating(
            [(0.0, mean(self.own["heuristic", "random"]), len(self.own["heuristic", "random"]))]
        )
        rated["alphabeta"] = fit_rating(
            [(rated[o], mean(self.own["alphabeta", o]), len(self.own["alphabeta", o])) for o in PANEL[:2]]
        )
        for label, against in self.models.items():
            rated[label] = fit_rating([(rated[o], mean(s), len(s)) for o, s in against.items()])
        return rated


def play_panel(
    pool: ProcessPoolExecutor, config_key: str, models: dict[str, np.ndarray], depth: int, units: int
) -> Panel:
    """Play the panel's own matches and every model against every panel member, each over
    ``units`` openings of the book from every seat (the same openings for every pairing)."""
    chunks = 4
    sizes = [units // chunks + (i < units % chunks) for i in range(chunks)]
    starts = [sum(sizes[:i]) for i in range(chunks)]

    def submit(me: str | np.ndarray, opponent: str):
        return [
            pool.submit(_shares, config_key, me, opponent, depth, n, s) for n, s in zip(sizes, starts, strict=True) if n
        ]

    pending_own = {
        pair: submit(*pair) for pair in (("heuristic", "random"), ("alphabeta", "random"), ("alphabeta", "heuristic"))
    }
    pending = {label: {o: submit(w, o) for o in PANEL} for label, w in models.items()}

    def collect(jobs) -> np.ndarray:
        return np.array([x for job in jobs for x in job.result()], dtype=float)

    return Panel(
        config_key,
        {pair: collect(jobs) for pair, jobs in pending_own.items()},
        {label: {o: collect(jobs) for o, jobs in against.items()} for label, against in pending.items()},
    )


# ---------------------------------------------------------------- efficiency and its interval


def efficiency(runs: dict[str, Run], ratings: dict[str, dict[str, float]]) -> tuple[float, dict[str, float]]:
    """The scheduler's Elo per CPU-hour over round-robin's (summed over configs), and each
    config's own ratio; inf where round-robin gained nothing, nan where neither did."""

    def gain(mode: str, key: str) -> float:
        return ratings[key].get(f"{mode}/{key}", 0.0)  # no promoted model: generation 0, random (0)

    def ratio(a: float, b: float) -> float:
        if b > 0:
            return a / b
        return math.nan if a <= 0 else math.inf

    hours = {mode: run.cpu_seconds / 3600 for mode, run in runs.items()}
    keys = list(ratings)
    per_hour = {mode: sum(gain(mode, k) for k in keys) / hours[mode] for mode in runs}
    configs = {
        k: ratio(gain("scheduler", k) / hours["scheduler"], gain("round_robin", k) / hours["round_robin"]) for k in keys
    }
    return ratio(per_hour["scheduler"], per_hour["round_robin"]), configs


def interval(values: list[float]) -> tuple[float, float]:
    finite = np.array([v for v in values if not math.isnan(v)])
    if not len(finite):
        return math.nan, math.nan
    return float(np.percentile(finite, 2.5)), float(np.percentile(finite, 97.5))


def _round(x: float) -> float | None:
    return None if math.isnan(x) else (x if math.isinf(x) else round(x, 3))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.training_efficiency", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu-hours", type=float, default=1.0, help="CPU budget of each run")
    parser.add_argument("--units", type=int, default=150, help="openings per rating match (each from every seat)")
    parser.add_argument("--depth", type=int, default=3, help="the alpha-beta panel member's depth")
    parser.add_argument("--configs", default=",".join(DEMO_CONFIGS))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--bootstrap", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="0.33 CPU-hours a run, 40-unit matches")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.quick:
        args.cpu_hours, args.units = min(args.cpu_hours, 0.33), min(args.units, 40)
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    if args.cpu_hours <= 0 or args.units < 2 or args.workers < 1 or not 1 <= args.depth <= 5 or not configs:
        parser.error(
            "--cpu-hours must be above 0, --units at least 2, --workers at least 1, --depth 1 to 5, "
            "and --configs must name at least one config"
        )
    cores = psutil.cpu_count() or 1
    budget = args.cpu_hours * 3600
    started = time.monotonic()
    runs = {mode: train(mode, configs, budget, cores) for mode in MODES}

    print("rating every final best on the panel", file=sys.stderr, flush=True)
    panels: dict[str, Panel] = {}
    with ProcessPoolExecutor(args.workers) as pool:
        for key in configs:
            models = {f"{mode}/{key}": run.weights[key] for mode, run in runs.items() if key in run.weights}
            panels[key] = play_panel(pool, key, models, args.depth, args.units)
    ratings = {key: panel.ratings() for key, panel in panels.items()}
    ratio, config_ratios = efficiency(runs, ratings)
    rng = np.random.default_rng(args.seed)
    resampled = [{k: p.ratings(rng) for k, p in panels.items()} for _ in range(args.bootstrap)]
    samples = [efficiency(runs, r) for r in resampled]
    low, high = interval([s[0] for s in samples])
    per_config = {k: [s[1][k] for s in samples] for k in configs}
    for mode, run in runs.items():
        for key, result in run.configs.items():
            label = f"{mode}/{key}"
            if label in ratings[key]:
                result.elo = round(ratings[key][label], 1)
                result.low, result.high = (round(x, 1) for x in interval([r[key][label] for r in resampled]))
    goal_met = ratio >= GOAL_RATIO and all(r >= GOAL_CONFIG_SHARE for r in config_ratios.values() if not math.isnan(r))
    report = {
        "budget_cpu_seconds": round(budget),
        "units": args.units,
        "alphabeta_depth": args.depth,
        "panel": {k: {p: round(v[p], 1) for p in PANEL} for k, v in ratings.items()},
        "runs": {
            mode: {
                "cpu_seconds": round(run.cpu_seconds),
                "wall_seconds": round(run.wall_seconds),
                "configs": {k: asdict(r) for k, r in run.configs.items()},
            }
            for mode, run in runs.items()
        },
        "ratio": _round(ratio),
        "ratio_low": _round(low),
        "ratio_high": _round(high),
        "config_ratios": {k: _round(v) for k, v in config_ratios.items()},
        "config_ratio_intervals": {k: [_round(x) for x in interval(v)] for k, v in per_config.items()},
        "goal_met": goal_met,
        "seconds": round(time.monotonic() - started),
    }
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"\nElo per CPU-hour, scheduler against round-robin ({budget:.0f} CPU s a run; {machine()})")
    print(f"{'config':<12} {'mode':<12} {'gens':>4} {'games':>6} {'Elo':>7}  95 %")
    for key in configs:
        for mode, run in runs.items():
            r = run.configs[key]
            print(f"{key:<12} {mode:<12} {r.generations:>4} {r.games:>6} {r.elo:>+7.0f}  [{r.low:+.0f}, {r.high:+.0f}]")
    for mode, run in runs.items():
        print(f"{mode}: {run.cpu_seconds:.0f} CPU s in {run.wall_seconds:.0f} s")
    print(f"panel: {report['panel']}")
    print(
        f"ratio {ratio:.2f} [{low:.2f}, {high:.2f}] (goal {GOAL_RATIO}); per config "
        + ", ".join(f"{k} {v:.2f}" for k, v in config_ratios.items())
        + f" (goal each ≥ {GOAL_CONFIG_SHARE}); goal met: {'yes' if goal_met else 'no'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
