"""Generations of the reference workload in one process, as the pipeline runs them across
a cluster: self-play with the current model, the next model trained from it (warm start)
on the newest window of games, and every generation measured against fixed players on
the opening book. It answers one question without a cluster: does the model keep
learning? (``python -m bench.reference_learning``, BENCHMARKS.md.)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from ringrift_reference.data import samples
from ringrift_reference.game import parse_config
from ringrift_reference.jobs import game_seed, play_units
from ringrift_reference.model import Model, train
from ringrift_reference.players import GameRecord, ModelPlayer, Player, play_game


@dataclass(frozen=True)
class Schedule:
    """How much each generation plays and trains on; the defaults are the pipeline's
    (TrainingSettings: 2,000 games before the first model, 1,000 more per generation,
    the newest 2,000 exported, 10 epochs; self-play at temperature 0.03)."""

    config_key: str
    generations: int = 8
    first_games: int = 2000
    games_per_generation: int = 1000
    window: int = 2000
    epochs: int = 10
    temperature: float = 0.03
    seed: int = 0


Mapper = Callable[..., Iterable]  # map() or a process pool's map


def selfplay(config_key: str, weights: np.ndarray, temperature: float, seeds: list[int]) -> list[GameRecord]:
    """Games of a model against itself, one per seed (a unit of work for a process pool)."""
    players = parse_config(config_key)[1]
    player = ModelPlayer(Model(config_key, weights), temperature=temperature)
    return [play_game(config_key, [player] * players, seed) for seed in seeds]


def generations(schedule: Schedule, mapper: Mapper = map, chunks: int = 1) -> Iterator[Model]:
    """Generation 1, 2, ... ``schedule.generations``: each trained on the newest window of
    games, the newest played by the generation before it (generation 0 plays at random).
    Self-play is split into ``chunks`` mapped by ``mapper``; the games are the same
    whatever the split (each has its own seed)."""
    config_key = schedule.config_key
    parse_config(config_key)
    model = Model.initial(config_key)
    games: list[GameRecord] = []
    for generation in range(1, schedule.generations + 1):
        count = schedule.first_games if generation == 1 else schedule.games_per_generation
        base = game_seed(schedule.seed, generation * 10_000_000)
        seeds = [base + i for i in range(count)]
        parts = [seeds[i::chunks] for i in range(chunks)]
        n = len(parts)
        played = mapper(selfplay, [config_key] * n, [model.weights] * n, [schedule.temperature] * n, parts)
        games += sorted((g for part in played for g in part), key=lambda g: g.seed)
        games = games[-schedule.window :]
        features, targets = samples(games)
        # As the train job does: from the parent's weights, with a fresh optimiser.
        parent = Model(schedule.config_key, model.weights.copy(), dict(model.meta))
        model = train(parent, features, targets, epochs=schedule.epochs, seed=schedule.seed + generation)
        model.adam_m = model.adam_v = None
        model.meta = {"config_key": schedule.config_key, "generation": generation}
        yield model


def unit_shares(
    config_key: str, me: Player, opponent: Player, units: int, seed: int = 0, offset: int = 0
) -> list[float]:
    """Per opening of the book (``units`` of them from entry ``offset``, each played from
    every seat), the share of half points ``me`` took against ``opponent`` (0.5: equal)."""
    players = parse_config(config_key)[1]
    per_unit = 2 * players * (players - 1)  # half points to take: 2 per opponent, per seat
    return [points / per_unit for points, _ in play_units(config_key, me, opponent, units, seed, offset)]


def score(config_key: str, me: Player, opponent: Player, units: int, seed: int = 0, offset: int = 0) -> float:
    """The share of half points ``me`` takes against ``opponent`` over ``units`` openings of
    the book, each played from every seat (0.5: equal)."""
    shares = unit_shares(config_key, me, opponent, units, seed, offset)
    return sum(shares) / len(shares)


def elo(share: float, games: int) -> float:
    """The Elo difference of a score share (clipped half a game from 0 and 1)."""
    clipped = min(max(share, 0.5 / games), 1 - 0.5 / games)
    return -400.0 * math.log10(1.0 / clipped - 1.0)
