"""Game databases and training files.

A game database is an SQLite file with a ``games`` table (one row per game: seed, moves,
scores, winners, the model that played). That table is the contract the node agent
relies on to count games in its manifest. A training file is an ``.npz`` of feature rows
and outcome targets.
"""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
from pathlib import Path

import numpy as np

from ringrift_reference.game import GameState, RulesError
from ringrift_reference.model import FeatureBuilder, feature_count
from ringrift_reference.players import GameRecord

SCHEMA = """
CREATE TABLE games (
    id INTEGER PRIMARY KEY,
    config_key TEXT NOT NULL,
    seed INTEGER NOT NULL,
    moves TEXT NOT NULL,
    scores TEXT NOT NULL,
    winners TEXT NOT NULL,
    model TEXT NOT NULL
);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def write_games(path: Path, records: list[GameRecord], model: str, meta: dict) -> None:
    """Write a whole game database atomically: readers (and the agent's manifest) never
    see a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    with sqlite3.connect(tmp) as db:
        db.executescript(SCHEMA)
        db.executemany(
            "INSERT INTO games (config_key, seed, moves, scores, winners, model) VALUES (?, ?, ?, ?, ?, ?)",
            [
                (r.config_key, r.seed, ",".join(map(str, r.moves)), json.dumps(r.scores), json.dumps(r.winners), model)
                for r in records
            ],
        )
        db.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", [(k, json.dumps(v)) for k, v in meta.items()])
    tmp.replace(path)


def read_games(path: Path, config_key: str) -> list[GameRecord]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        rows = db.execute(
            "SELECT seed, moves, scores, winners FROM games WHERE config_key = ? ORDER BY id", (config_key,)
        ).fetchall()
    return [
        GameRecord(config_key, seed, [int(m) for m in moves.split(",") if m], json.loads(scores), json.loads(winners))
        for seed, moves, scores, winners in rows
    ]


def check_game(record: GameRecord) -> str:
    """Why a stored game cannot be a game of its config ("" when it is one): every move
    legal in turn, the board full at the end, the stored scores and winners those of the
    final position."""
    try:
        state = GameState.new(record.config_key)
        for cell in record.moves:
            state.play(cell)
    except RulesError as exc:
        return f"illegal move: {exc}"
    if not state.over:
        return f"the game stops after {len(record.moves)} moves with empty cells left"
    if list(record.scores) != state.scores() or sorted(record.winners) != state.winners():
        return "the stored scores or winners are not those of the final position"
    return ""


def outcome(winners: list[int], players: int, player: int) -> float:
    """+1 for a sole winner, 0 for a shared win or a draw, -1 for everyone else."""
    if player not in winners:
        return -1.0
    return 1.0 if len(winners) == 1 else 0.0


def samples(records: list[GameRecord]) -> tuple[np.ndarray, np.ndarray]:
    """Every position of every game, once from each player's point of view, with that
    player's final outcome as the target."""
    if not records:
        return np.empty((0, 0)), np.empty(0)
    config_key = records[0].config_key
    state = GameState.new(config_key)
    builder = FeatureBuilder(state.geo)
    rows: list[np.ndarray] = []
    targets: list[float] = []
    for record in records:
        state = GameState.new(config_key)
        results = [outcome(record.winners, state.players, p) for p in range(state.players)]
        for cell in record.moves:
            state.play(cell)
            for player in range(state.players):
                rows.append(builder.position(state, player))
                targets.append(results[player])
    features = np.vstack(rows) if rows else np.empty((0, feature_count(state.geo)))
    return features, np.asarray(targets)


def save_training_file(path: Path, features: np.ndarray, targets: np.ndarray, meta: dict) -> str:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, features=features, targets=targets, meta=np.array(json.dumps(meta, sort_keys=True)))
    data = buffer.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return hashlib.sha256(data).hexdigest()


def load_training_file(path: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    with np.load(path, allow_pickle=False) as data:
        return data["features"].copy(), data["targets"].copy(), json.loads(str(data["meta"]))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
