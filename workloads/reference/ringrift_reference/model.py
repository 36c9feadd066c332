"""The trainable model: a value function over board features, linear in its weights and
trained with Adam on game outcomes. Small, deterministic under a seed, and able to learn
what matters in Rift (corners are worth holding, cells next to them are not).

Features of a position, from one player's point of view, per symmetry class k of the
board's cells: the share of class k held by that player and the share held by its
opponents, and both again weighted by the game phase (a cell's worth changes as the
board fills: edges matter late, the centre early); then the player's share of all
stones, that share times the phase, the phase, and a bias. Without the phase terms the
model is saturated after one generation: more and better games no longer change how it
plays. A model file is an ``.npz`` holding the weights, the optimiser state
and a JSON metadata record (config, generation, parent, training window, a sha256 of the
weights); the sha256 of the file itself is kept beside it and in the registry.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ringrift_reference.game import EMPTY, GameState, Geometry, parse_config

EXTRA_FEATURES = 4


def feature_count(geo: Geometry) -> int:
    return 4 * len(geo.class_sizes) + EXTRA_FEATURES


class FeatureBuilder:
    """Features of positions, computed from class counts so that a move's features are
    an update of its position's, not a recount of the board."""

    def __init__(self, geo: Geometry) -> None:
        self.geo = geo
        self.k = len(geo.class_sizes)
        self.inv_sizes = 1.0 / np.asarray(geo.class_sizes, dtype=np.float64)

    def counts(self, state: GameState, player: int) -> tuple[list[int], list[int], int, int]:
        own = [0] * self.k
        opp = [0] * self.k
        own_total = 0
        stones = 0
        cls = self.geo.cell_class
        for cell, owner in enumerate(state.cells):
            if owner == EMPTY:
                continue
            stones += 1
            if owner == player:
                own[cls[cell]] += 1
                own_total += 1
            else:
                opp[cls[cell]] += 1
        return own, opp, own_total, stones

    def vector(self, own, opp, own_total: int, stones: int) -> np.ndarray:
        share = own_total / stones if stones else 0.0
        phase = stones / self.geo.cells
        mine = np.asarray(own, dtype=np.float64) * self.inv_sizes
        theirs = np.asarray(opp, dtype=np.float64) * self.inv_sizes
        return np.concatenate([mine, theirs, mine * phase, theirs * phase, [share, share * phase, phase, 1.0]])

    def position(self, state: GameState, player: int) -> np.ndarray:
        return self.vector(*self.counts(state, player))

    def after_moves(self, state: GameState, moves: list[tuple[int, list[int]]]) -> np.ndarray:
        """One feature row per legal move: the position after it, from the mover's view."""
        own, opp, own_total, stones = self.counts(state, state.to_move)
        cls = self.geo.cell_class
        rows = np.empty((len(moves), feature_count(self.geo)))
        for i, (cell, captured) in enumerate(moves):
            o, p = own[:], opp[:]
            o[cls[cell]] += 1
            for c in captured:
                o[cls[c]] += 1
                p[cls[c]] -= 1
            rows[i] = self.vector(o, p, own_total + 1 + len(captured), stones + 1)
        return rows


@dataclass
class Model:
    config_key: str
    weights: np.ndarray
    meta: dict = field(default_factory=dict)
    adam_m: np.ndarray | None = None
    adam_v: np.ndarray | None = None
    adam_t: int = 0

    @classmethod
    def initial(cls, config_key: str) -> Model:
        """Generation 0: all weights zero, so every move looks alike (plays at random)."""
        geo, _ = parse_config(config_key)
        return cls(config_key, np.zeros(feature_count(geo)), {"config_key": config_key, "generation": 0})

    def values(self, rows: np.ndarray) -> np.ndarray:
        return rows @ self.weights

    def weights_sha256(self) -> str:
        return hashlib.sha256(np.ascontiguousarray(self.weights).tobytes()).hexdigest()

    def save(self, path: Path) -> str:
        """Write atomically (temporary file, then rename); return the file's sha256."""
        meta = {**self.meta, "config_key": self.config_key, "weights_sha256": self.weights_sha256()}
        buffer = io.BytesIO()
        arrays = {"weights": self.weights, "meta": np.array(json.dumps(meta, sort_keys=True))}
        if self.adam_m is not None:
            arrays.update(adam_m=self.adam_m, adam_v=self.adam_v, adam_t=np.array(self.adam_t))
        np.savez(buffer, **arrays)
        data = buffer.getvalue()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
        self.meta = meta
        return hashlib.sha256(data).hexdigest()

    @classmethod
    def load(cls, path: Path) -> Model:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            model = cls(meta["config_key"], data["weights"].copy(), meta)
            if "adam_m" in data:
                model.adam_m, model.adam_v = data["adam_m"].copy(), data["adam_v"].copy()
                model.adam_t = int(data["adam_t"])
        geo, _ = parse_config(model.config_key)
        if model.weights.shape != (feature_count(geo),):
            raise ValueError(f"{path.name}: weights of shape {model.weights.shape} do not fit {model.config_key}")
        return model


def train(
    model: Model,
    features: np.ndarray,
    targets: np.ndarray,
    *,
    epochs: int,
    seed: int,
    learning_rate: float = 0.02,
    batch_size: int = 256,
    l2_to_start: float = 1e-3,
    start_epoch: int = 0,
    checkpoint=None,
) -> Model:
    """Mini-batch Adam on squared error, pulled gently towards the starting weights (the
    warm start). The step size decays linearly to a tenth over the epochs and the last
    epoch's iterates are averaged: a constant step leaves the weights wherever the last
    mini-batches pushed them, and two runs on the same data would then play noticeably
    differently. ``checkpoint(model, epoch)`` is called after every epoch, so a failed
    run can resume at ``start_epoch``."""
    if len(features) == 0:
        raise ValueError("no training samples")
    anchor = model.weights.copy()
    w = model.weights.copy()
    m = np.zeros_like(w) if model.adam_m is None else model.adam_m.copy()
    v = np.zeros_like(w) if model.adam_v is None else model.adam_v.copy()
    t = model.adam_t
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    n = len(features)
    for epoch in range(start_epoch, epochs):
        order = np.random.default_rng([seed, epoch]).permutation(n)
        rate = learning_rate * (1.0 - 0.9 * epoch / max(1, epochs - 1))
        last = epoch == epochs - 1
        average, steps = np.zeros_like(w), 0
        for start in range(0, n, batch_size):
            batch = order[start : start + batch_size]
            x, y = features[batch], targets[batch]
            grad = 2.0 * x.T @ (x @ w - y) / len(batch) + 2.0 * l2_to_start * (w - anchor)
            t += 1
            m = beta1 * m + (1 - beta1) * grad
            v = beta2 * v + (1 - beta2) * grad * grad
            w = w - rate * (m / (1 - beta1**t)) / (np.sqrt(v / (1 - beta2**t)) + eps)
            if last:
                average, steps = average + w, steps + 1
        if last and steps:
            w = average / steps
        model.weights, model.adam_m, model.adam_v, model.adam_t = w, m, v, t
        if checkpoint is not None:
            checkpoint(model, epoch + 1)
    return model
