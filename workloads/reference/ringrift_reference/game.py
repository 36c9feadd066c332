"""Rift: the reference game. Othello's capture rule generalised to 2–4 players on square
boards of any even size (``square6``, ``square8``, ...).

Rules:
- Players move in turn (0, 1, ...). A move places one stone of the mover's colour on an
  empty cell.
- A *capturing* move is one that brackets, along at least one of the 8 directions, an
  unbroken line of one or more stones that are not the mover's, ending in a stone of the
  mover's. Every stone of every bracketed line becomes the mover's.
- If the mover has a capturing move, it must play one. Otherwise it places on any empty
  cell next to a stone (no capture). So every turn fills one cell and the game ends when
  the board is full: a game on an n×n board always lasts n² − (starting stones) moves.
- Scores are stone counts. The players with the highest count share the win; a game in
  which all players tie is a draw.

The configuration is a config key ``<board>_<N>p`` (``square8_2p``): the board comes from
the key, never from a default, and the player count is never assumed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache

EMPTY = -1
DIRECTIONS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))
BOARD_PATTERN = re.compile(r"^square(?P<size>\d{1,2})$")
CONFIG_PATTERN = re.compile(r"^(?P<board>[a-z][a-z0-9]*)_(?P<players>[2-4])p$")


class RulesError(ValueError):
    """An illegal move or an unsupported configuration."""


@dataclass(frozen=True)
class Geometry:
    """Cells of a board, their rays in every direction, neighbours and symmetry classes."""

    board: str
    size: int
    rays: tuple[tuple[tuple[int, ...], ...], ...]
    neighbours: tuple[tuple[int, ...], ...]
    cell_class: tuple[int, ...]
    class_sizes: tuple[int, ...]

    @property
    def cells(self) -> int:
        return self.size * self.size


@cache
def geometry(board: str) -> Geometry:
    match = BOARD_PATTERN.match(board)
    if not match or not (4 <= int(match["size"]) <= 16) or int(match["size"]) % 2:
        raise RulesError(f"unsupported board {board!r}: use square<n> with an even n from 4 to 16 (square6, square8)")
    n = int(match["size"])
    rays = []
    neighbours = []
    for cell in range(n * n):
        r, c = divmod(cell, n)
        cell_rays = []
        for dr, dc in DIRECTIONS:
            ray = []
            rr, cc = r + dr, c + dc
            while 0 <= rr < n and 0 <= cc < n:
                ray.append(rr * n + cc)
                rr, cc = rr + dr, cc + dc
            if len(ray) >= 2:  # a capture needs at least one bracketed stone and the bracket
                cell_rays.append(tuple(ray))
        rays.append(tuple(cell_rays))
        neighbours.append(
            tuple((r + dr) * n + (c + dc) for dr, dc in DIRECTIONS if 0 <= r + dr < n and 0 <= c + dc < n)
        )
    # Symmetry class: the cell's position folded into one octant of the board.
    keys = {}
    cell_class = []
    for cell in range(n * n):
        r, c = divmod(cell, n)
        a, b = min(r, n - 1 - r), min(c, n - 1 - c)
        key = (min(a, b), max(a, b))
        cell_class.append(keys.setdefault(key, len(keys)))
    sizes = [0] * len(keys)
    for k in cell_class:
        sizes[k] += 1
    return Geometry(board, n, tuple(rays), tuple(neighbours), tuple(cell_class), tuple(sizes))


def parse_config(config_key: str) -> tuple[Geometry, int]:
    match = CONFIG_PATTERN.match(config_key)
    if not match:
        raise RulesError(f"{config_key!r} is not a config key: expected <board>_<N>p, for example square8_2p")
    return geometry(match["board"]), int(match["players"])


def starting_stones(geo: Geometry, players: int) -> dict[int, int]:
    """The central 2×2 block, players assigned around it; with 2 players the diagonal
    pattern of Othello."""
    n = geo.size
    m = n // 2 - 1
    block = [m * n + m, m * n + m + 1, (m + 1) * n + m + 1, (m + 1) * n + m]  # clockwise
    owners = {2: (0, 1, 0, 1), 3: (0, 1, 2, 0), 4: (0, 1, 2, 3)}[players]
    stones = dict(zip(block, owners, strict=True))
    if players == 3:
        # Player 0 holds two cells of the block; players 1 and 2 get one more each,
        # diagonally outside the block, so everyone starts with two.
        stones[(m - 1) * n + m + 2] = 1
        stones[(m + 2) * n + m - 1] = 2
    return stones


@dataclass
class GameState:
    geo: Geometry
    players: int
    cells: list[int] = field(default_factory=list)
    to_move: int = 0
    moves_played: int = 0
    empties: int = 0

    @classmethod
    def new(cls, config_key: str) -> GameState:
        geo, players = parse_config(config_key)
        cells = [EMPTY] * geo.cells
        for cell, owner in starting_stones(geo, players).items():
            cells[cell] = owner
        return cls(geo, players, cells, 0, 0, cells.count(EMPTY))

    def copy(self) -> GameState:
        return GameState(self.geo, self.players, self.cells[:], self.to_move, self.moves_played, self.empties)

    @property
    def over(self) -> bool:
        return self.empties == 0

    def captures(self, cell: int, player: int) -> list[int]:
        """Stones that placing at ``cell`` would capture for ``player``."""
        cells = self.cells
        captured: list[int] = []
        for ray in self.geo.rays[cell]:
            run = []
            for other in ray:
                owner = cells[other]
                if owner == EMPTY:
                    break
                if owner == player:
                    captured.extend(run)
                    break
                run.append(other)
        return captured

    def legal_moves(self) -> list[tuple[int, list[int]]]:
        """Legal moves of the player to move, each with the stones it captures."""
        cells = self.cells
        player = self.to_move
        capturing = []
        adjacent = []
        for cell in range(len(cells)):
            if cells[cell] != EMPTY:
                continue
            if not any(cells[nb] != EMPTY for nb in self.geo.neighbours[cell]):
                continue
            captured = self.captures(cell, player)
            if captured:
                capturing.append((cell, captured))
            else:
                adjacent.append((cell, captured))
        if capturing:
            return capturing
        if adjacent:
            return adjacent
        # A board with no stone next to any empty cell cannot occur from the start
        # position, but a move is always possible while cells are empty.
        return [(cell, []) for cell in range(len(cells)) if cells[cell] == EMPTY]

    def play(self, cell: int, captured: list[int] | None = None) -> None:
        if self.over:
            raise RulesError("the game is over")
        if not 0 <= cell < len(self.cells) or self.cells[cell] != EMPTY:
            raise RulesError(f"cell {cell} is not an empty cell of the board")
        if captured is None:
            legal = dict(self.legal_moves())
            if cell not in legal:
                raise RulesError(f"cell {cell} is not a legal move for player {self.to_move}")
            captured = legal[cell]
        player = self.to_move
        self.cells[cell] = player
        for other in captured:
            self.cells[other] = player
        self.empties -= 1
        self.moves_played += 1
        self.to_move = (player + 1) % self.players

    def scores(self) -> list[int]:
        counts = [0] * self.players
        for owner in self.cells:
            if owner != EMPTY:
                counts[owner] += 1
        return counts

    def winners(self) -> list[int]:
        """Players with the highest score; every player when all tie (a draw)."""
        scores = self.scores()
        best = max(scores)
        return [p for p, s in enumerate(scores) if s == best]
