"""Players of Rift: random, heuristic and alpha-beta baselines, and the model-guided player. Every
player draws from the random generator it is given, so a game is replayable from its
seed."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ringrift_reference.game import GameState
from ringrift_reference.model import FeatureBuilder, Model

BASELINES = ("random", "heuristic", "alphabeta")


class Player:
    name = "player"

    def choose(self, state: GameState, moves: list[tuple[int, list[int]]], rng: np.random.Generator) -> int:
        raise NotImplementedError


class RandomPlayer(Player):
    name = "random"

    def choose(self, state, moves, rng):
        return int(rng.integers(len(moves)))


class HeuristicPlayer(Player):
    """Greedy: the move that captures most stones; ties broken at random."""

    name = "heuristic"

    def choose(self, state, moves, rng):
        counts = np.fromiter((len(captured) for _, captured in moves), dtype=np.int64, count=len(moves))
        best = np.flatnonzero(counts == counts.max())
        return int(best[rng.integers(len(best))])


class AlphaBetaPlayer(Player):
    """A fixed yardstick stronger than the heuristic: alpha-beta search ``depth`` plies deep
    on the stone margin (own stones minus the best opponent's), "paranoid" with 3–4 players
    (every opponent plays against the mover), captures searched first; ties at the root
    broken at random. Its strength never changes, so ratings can be anchored on it."""

    name = "alphabeta"

    def __init__(self, depth: int = 3) -> None:
        self.depth = depth

    @staticmethod
    def _margin(state: GameState, me: int) -> float:
        scores = state.scores()
        return scores[me] - max(s for player, s in enumerate(scores) if player != me)

    def _search(self, state: GameState, depth: int, me: int, alpha: float, beta: float) -> float:
        if depth == 0 or state.over:
            return self._margin(state, me)
        maximizing = state.to_move == me
        best = -np.inf if maximizing else np.inf
        for cell, captured in sorted(state.legal_moves(), key=lambda move: -len(move[1])):
            child = state.copy()
            child.play(cell, captured)
            value = self._search(child, depth - 1, me, alpha, beta)
            if maximizing:
                best, alpha = max(best, value), max(alpha, value)
            else:
                best, beta = min(best, value), min(beta, value)
            if beta <= alpha:
                break
        return best

    def choose(self, state, moves, rng):
        me = state.to_move
        values = np.empty(len(moves))
        for index, (cell, captured) in enumerate(moves):
            child = state.copy()
            child.play(cell, captured)
            values[index] = self._search(child, self.depth - 1, me, -np.inf, np.inf)
        best = np.flatnonzero(values == values.max())
        return int(best[rng.integers(len(best))])


@dataclass
class ModelPlayer(Player):
    """Plays the move whose resulting position the model values most. With a temperature
    it samples moves by softmax of the values instead (exploration during self-play)."""

    model: Model
    temperature: float = 0.0
    lookahead: bool = True
    name: str = "model"
    _features: dict = field(default_factory=dict)

    def _builder(self, state: GameState) -> FeatureBuilder:
        builder = self._features.get(state.geo.board)
        if builder is None:
            builder = self._features[state.geo.board] = FeatureBuilder(state.geo)
        return builder

    def _values(self, state: GameState, moves) -> np.ndarray:
        """Value of each move for the mover. With lookahead, the next player answers with
        its own best move by the same model, and the position after that answer is what
        counts."""
        builder = self._builder(state)
        if not self.lookahead or state.empties <= 1:
            return self.model.values(builder.after_moves(state, moves))
        me = state.to_move
        values = np.empty(len(moves))
        for i, (cell, captured) in enumerate(moves):
            child = state.copy()
            child.play(cell, captured)
            replies = child.legal_moves()
            j = int(np.argmax(self.model.values(builder.after_moves(child, replies))))
            child.play(*replies[j])
            values[i] = self.model.values(builder.position(child, me)[None, :])[0]
        return values

    def choose(self, state, moves, rng):
        values = self._values(state, moves)
        if self.temperature > 0:
            logits = (values - values.max()) / self.temperature
            probs = np.exp(logits)
            probs /= probs.sum()
            return int(rng.choice(len(moves), p=probs))
        best = np.flatnonzero(values >= values.max() - 1e-12)
        return int(best[rng.integers(len(best))])


def baseline(name: str) -> Player:
    if name == "random":
        return RandomPlayer()
    if name == "heuristic":
        return HeuristicPlayer()
    if name == "alphabeta":
        return AlphaBetaPlayer()
    raise ValueError(f"unknown baseline {name!r}: use one of {', '.join(BASELINES)}")


@dataclass
class GameRecord:
    config_key: str
    seed: int
    moves: list[int]
    scores: list[int]
    winners: list[int]


def play_game(
    config_key: str, seats: list[Player], seed: int, random_opening: int = 0, opening: tuple[int, ...] = ()
) -> GameRecord:
    """One game; ``seats[i]`` plays as player i. It starts with the moves of ``opening``
    (an opening-book entry), then ``random_opening`` moves drawn at random (from the
    game's seed): an evaluation between deterministic players would otherwise replay the
    same few games."""
    state = GameState.new(config_key)
    if len(seats) != state.players:
        raise ValueError(f"{config_key} needs {state.players} players, got {len(seats)}")
    rng = np.random.default_rng(seed)
    moves: list[int] = []
    for cell in opening:
        state.play(cell)
        moves.append(cell)
    random_opening += len(opening)
    while not state.over:
        legal = state.legal_moves()
        if len(moves) < random_opening:
            cell, captured = legal[int(rng.integers(len(legal)))]
            state.play(cell, captured)
            moves.append(cell)
            continue
        cell, captured = legal[seats[state.to_move].choose(state, legal, rng)]
        state.play(cell, captured)
        moves.append(cell)
    return GameRecord(config_key, seed, moves, state.scores(), state.winners())
