"""Job entry points of the reference workload: ``python -m ringrift_reference <command>``.

The node agent runs these through its job templates (``templates.toml`` beside this
file), exactly as it would run a user's engine. Every command writes ``result.json`` in
its work directory; the agent reports that JSON as the job's result. Paths given to a
command are relative to the data directory and must stay inside it.

- ``selfplay``: plays games with the config's model, writes ``games/<config>/<job>.db``.
- ``export``: newest games of a config → ``training/<config>/<name>.npz``.
- ``train``: warm start from a parent model, write ``models/<config>/<name>.npz``;
  checkpoints after every epoch and resumes from one.
- ``gauntlet``: a candidate against an incumbent model and baselines: openings of the
  book (``openings.py``), each played from every seat (a unit); per opponent games won,
  lost, drawn, the pairwise results and every unit's half points.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sqlite3
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from ringrift_reference.data import (
    check_game,
    file_sha256,
    load_training_file,
    read_games,
    samples,
    save_training_file,
    write_games,
)
from ringrift_reference.game import RulesError, parse_config
from ringrift_reference.model import Model, train
from ringrift_reference.openings import opening
from ringrift_reference.players import BASELINES, GameRecord, ModelPlayer, Player, baseline, play_game


class JobError(Exception):
    """A bad argument or missing input: reported on stderr, exit code 2."""


def inside(data_dir: Path, relative: str, what: str) -> Path:
    """``relative`` resolved inside ``data_dir`` (symlinks included), or JobError."""
    if not relative or relative.startswith("/") or ".." in Path(relative).parts:
        raise JobError(f"{what} must be a relative path inside the data directory, got {relative!r}")
    root = data_dir.resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root):
        raise JobError(f"{what} {relative!r} leads outside the data directory")
    return path


def game_seed(seed: int, index: int) -> int:
    """Seed of game ``index`` of a job with ``seed`` (fits a signed 64-bit column)."""
    return (seed * 1_000_003 + index) % (1 << 62)


def write_result(work_dir: Path, result: dict) -> None:
    work_dir.mkdir(parents=True, exist_ok=True)
    (work_dir / "result.json").write_text(json.dumps(result, sort_keys=True))
    print(json.dumps(result, sort_keys=True))


def load_model(data_dir: Path, relative: str, config_key: str) -> tuple[Model, str]:
    """The model at ``relative``; with no path, generation 0 (untrained)."""
    if not relative:
        return Model.initial(config_key), "gen0"
    path = inside(data_dir, relative, "model")
    if not path.exists():
        raise JobError(f"model {relative} is not on this node")
    model = Model.load(path)
    if model.config_key != config_key:
        raise JobError(f"model {relative} plays {model.config_key}, not {config_key}")
    return model, relative


def newest_local_model(data_dir: Path, config_key: str) -> str:
    """The newest model file of a config on this node, relative; empty when none."""
    folder = inside(data_dir, f"models/{config_key}", "models folder")
    files = sorted(folder.glob("*.npz"), key=lambda p: (p.stat().st_mtime, p.name)) if folder.is_dir() else []
    return str(files[-1].relative_to(data_dir.resolve())) if files else ""


def cmd_selfplay(args) -> dict:
    _geo, players = parse_config(args.config_key)
    if args.model and not inside(args.data_dir, args.model, "model").exists():
        # The promoted model is still on its way to this node: play with the newest one
        # it holds rather than fail (the result names the model that played).
        fallback = newest_local_model(args.data_dir, args.config_key)
        print(
            f"warning: model {args.model} is not on this node yet; playing with {fallback or 'generation 0'}",
            file=sys.stderr,
        )
        args.model = fallback
    model, model_name = load_model(args.data_dir, args.model, args.config_key)
    if args.seed == -1:  # derived from the job id: distinct jobs play distinct games, replayably
        args.seed = int.from_bytes(hashlib.sha256(args.job_id.encode()).digest()[:6], "big")
    player = ModelPlayer(model, temperature=args.temperature)
    started = time.monotonic()
    records = [play_game(args.config_key, [player] * players, game_seed(args.seed, i)) for i in range(args.games)]
    out = inside(args.data_dir, f"games/{args.config_key}/{args.job_id}.db", "games file")
    write_games(out, records, model_name, {"job_id": args.job_id, "seed": args.seed, "config_key": args.config_key})
    return {
        "config_key": args.config_key,
        "games": len(records),
        "path": str(out.relative_to(args.data_dir.resolve())),
        "sha256": file_sha256(out),
        "model": model_name,
        "seconds": round(time.monotonic() - started, 3),
    }


def cmd_export(args) -> dict:
    """The newest ``window`` games of the config into a training file. A game database that
    cannot be read, and a game that fails its checks (``check_game``), is skipped and
    counted, never fatal; the result names the self-play job of every file used."""
    folder = inside(args.data_dir, f"games/{args.config_key}", "games folder")
    files = sorted(folder.glob("*.db"), key=lambda p: (p.stat().st_mtime, p.name)) if folder.exists() else []
    records: list[GameRecord] = []
    sources: list[dict] = []
    skipped_games, skipped_files = 0, []
    for path in reversed(files):  # newest first, until the window is full
        try:
            stored = read_games(path, args.config_key)
        except (sqlite3.Error, ValueError) as exc:
            print(f"warning: skipping {path.name}: {exc}", file=sys.stderr)
            skipped_files.append(path.name)
            continue
        good = [r for r in stored if not check_game(r)]
        skipped_games += len(stored) - len(good)
        room = args.window - len(records)
        used = good[-room:] if room < len(good) else good
        records[:0] = used
        sources.append({"file": path.name, "job_id": path.stem, "games": len(used), "skipped": len(stored) - len(good)})
        if len(records) >= args.window:
            break
    if not records:
        raise JobError(f"no games of {args.config_key} on this node under games/{args.config_key}/")
    features, targets = samples(records)
    out = inside(args.data_dir, args.output, "output")
    meta = {"config_key": args.config_key, "games": len(records), "files": [s["file"] for s in sources]}
    sha = save_training_file(out, features, targets, meta)
    return {
        "config_key": args.config_key,
        "games": len(records),
        "samples": len(targets),
        "path": args.output,
        "sha256": sha,
        "sources": sources,
        "skipped_games": skipped_games,
        "skipped_files": skipped_files,
    }


def cmd_train(args) -> dict:
    training = inside(args.data_dir, args.training_file, "training file")
    if not training.exists():
        raise JobError(f"training file {args.training_file} is not on this node")
    features, targets, meta = load_training_file(training)
    if meta.get("config_key") != args.config_key:
        raise JobError(f"training file {args.training_file} holds {meta.get('config_key')}, not {args.config_key}")
    model, parent = load_model(args.data_dir, args.parent, args.config_key)
    start_epoch = 0
    checkpoint_path = inside(args.data_dir, args.checkpoint, "checkpoint") if args.checkpoint else None
    if checkpoint_path is not None and checkpoint_path.exists():
        model = Model.load(checkpoint_path)
        start_epoch = int(model.meta.get("epoch", 0))
        print(f"resuming from {args.checkpoint} at epoch {start_epoch}", file=sys.stderr)

    def checkpoint(current: Model, epoch: int) -> None:
        if checkpoint_path is not None:
            current.meta = {**current.meta, "epoch": epoch}
            current.save(checkpoint_path)

    model.meta = {
        "config_key": args.config_key,
        "generation": args.generation,
        "parent": parent,
        "training_window": {"games": meta.get("games", 0), "samples": len(targets), "file": args.training_file},
    }
    train(model, features, targets, epochs=args.epochs, seed=args.seed, start_epoch=start_epoch, checkpoint=checkpoint)
    model.meta = {k: v for k, v in model.meta.items() if k != "epoch"}
    model.adam_m = model.adam_v = None
    out = inside(args.data_dir, args.output, "output")
    sha = model.save(out)
    (out.parent / f"{out.name}.json").write_text(json.dumps({**model.meta, "sha256": sha}, sort_keys=True))
    if checkpoint_path is not None:
        checkpoint_path.unlink(missing_ok=True)
    return {
        "config_key": args.config_key,
        "path": args.output,
        "sha256": sha,
        "parent": parent,
        "generation": args.generation,
        "training_games": meta.get("games", 0),
        "samples": len(targets),
        "resumed_from_epoch": start_epoch,
    }


def play_units(
    config_key: str, me: Player, opponent: Player, units: int, seed: int, offset: int
) -> Iterator[tuple[int, list[GameRecord]]]:
    """``units`` openings of the book from entry ``offset`` on, each played once from every
    seat by ``me`` against ``opponent`` in the other seats: per unit, the half points
    ``me`` took (2 per opponent finishing below it, 1 per opponent level with it) and
    its games, seat 0 first."""
    players = parse_config(config_key)[1]
    for unit in range(units):
        start = opening(config_key, offset + unit)
        total, records = 0, []
        for seat in range(players):
            seats = [opponent] * players
            seats[seat] = me
            record = play_game(config_key, seats, game_seed(seed, unit * players + seat), opening=start)
            mine = record.scores[seat]
            total += sum(2 * (mine > s) + (mine == s) for other, s in enumerate(record.scores) if other != seat)
            records.append(record)
        yield total, records


def cmd_gauntlet(args) -> dict:
    _, players = parse_config(args.config_key)
    candidate, candidate_name = load_model(args.data_dir, args.candidate, args.config_key)
    opponents: dict[str, Player] = {}
    if args.incumbent:
        incumbent, _ = load_model(args.data_dir, args.incumbent, args.config_key)
        opponents[args.incumbent_name or args.incumbent] = ModelPlayer(incumbent)
    for name in filter(None, "" if args.baselines == "none" else args.baselines.split(",")):
        if name not in BASELINES:
            raise JobError(f"unknown baseline {name!r}: use {', '.join(BASELINES)}")
        opponents[name] = baseline(name)
    if not opponents:
        raise JobError("nothing to play against: give --incumbent or --baselines")
    me = ModelPlayer(candidate)
    units = max(1, args.games // players)
    results = {}
    for index, (name, opponent) in enumerate(opponents.items()):
        wins = losses = draws = pair_wins = pair_losses = pair_draws = 0
        totals = []
        seed = game_seed(args.seed, index * 1_000_000)
        for total, records in play_units(args.config_key, me, opponent, units, seed, args.opening_offset):
            totals.append(total)
            for seat, record in enumerate(records):
                if seat in record.winners:
                    wins, draws = (wins + 1, draws) if len(record.winners) == 1 else (wins, draws + 1)
                else:
                    losses += 1
                mine = record.scores[seat]
                for other, score in enumerate(record.scores):
                    if other != seat:
                        pair_wins += mine > score
                        pair_losses += mine < score
                        pair_draws += mine == score
        results[name] = {
            "games": units * players,
            "wins": wins,
            "losses": losses,
            "draws": draws,
            "pairwise": {"wins": pair_wins, "losses": pair_losses, "draws": pair_draws},
            "units": totals,
        }
    return {
        "config_key": args.config_key,
        "candidate": candidate_name,
        "players": players,
        "opening_offset": args.opening_offset,
        "opponents": results,
    }


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m ringrift_reference", description=__doc__.split("\n\n")[0])
    commands = root.add_subparsers(dest="command", required=True)

    def command(name, handler, help_text):
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("--data-dir", type=Path, required=True)
        sub.add_argument("--work-dir", type=Path, required=True)
        sub.add_argument("--config-key", required=True)
        sub.add_argument("--seed", type=int, default=0)
        sub.set_defaults(handler=handler)
        return sub

    sp = command("selfplay", cmd_selfplay, "play games with a model, write a game database")
    sp.add_argument("--job-id", required=True)
    sp.add_argument("--games", type=int, default=50)
    sp.add_argument("--model", default="")
    sp.add_argument("--temperature", type=float, default=0.03)
    ex = command("export", cmd_export, "newest games of a config to a training file")
    ex.add_argument("--window", type=int, default=2000)
    ex.add_argument("--output", required=True)
    tr = command("train", cmd_train, "train a model from a training file")
    tr.add_argument("--training-file", required=True)
    tr.add_argument("--parent", default="")
    tr.add_argument("--output", required=True)
    tr.add_argument("--generation", type=int, default=1)
    tr.add_argument("--epochs", type=int, default=10)
    tr.add_argument("--checkpoint", default="")
    ga = command("gauntlet", cmd_gauntlet, "a candidate against an incumbent and baselines")
    ga.add_argument("--candidate", required=True)
    ga.add_argument("--incumbent", default="")
    ga.add_argument("--incumbent-name", default="")
    ga.add_argument("--baselines", default="random,heuristic")
    ga.add_argument("--games", type=int, default=40, help="games per opponent, rounded down to whole units")
    ga.add_argument("--opening-offset", type=int, default=0, help="first opening-book entry to play")
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.seed < (-1 if args.command == "selfplay" else 0):
            raise JobError("--seed must not be negative (selfplay: -1 derives it from the job id)")
        if getattr(args, "games", 1) < 1 or getattr(args, "window", 1) < 1 or getattr(args, "epochs", 1) < 1:
            raise JobError("--games, --window and --epochs must be at least 1")
        if getattr(args, "opening_offset", 0) < 0:
            raise JobError("--opening-offset must not be negative")
        parse_config(args.config_key)
        result = args.handler(args)
    except (JobError, RulesError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    write_result(args.work_dir, result)
    return 0
