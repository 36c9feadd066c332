"""Request validation helpers: collect every violation, then raise one InvalidArgument.

Identifier rules that several services enforce (node ids, config keys) live here once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ringrift_runtime.errors import FieldViolation, InvalidArgument

NODE_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
CONFIG_KEY_PATTERN = re.compile(r"^(?P<board>[a-z][a-z0-9]*)_(?P<players>[2-4])p$")
MIN_PLAYERS, MAX_PLAYERS = 2, 4


@dataclass(frozen=True)
class ConfigKey:
    """A game configuration: board and player count, written ``<board>_<N>p``."""

    board: str
    players: int

    def __str__(self) -> str:
        return f"{self.board}_{self.players}p"


def parse_config_key(text: str) -> ConfigKey:
    """Parse ``<board>_<N>p``; raise ValueError saying what is wrong."""
    match = CONFIG_KEY_PATTERN.match(text)
    if not match:
        raise ValueError(
            f"{text!r} is not a config key: expected '<board>_<N>p' with a lower-case board "
            f"and N from {MIN_PLAYERS} to {MAX_PLAYERS}, e.g. 'square8_2p'"
        )
    return ConfigKey(match["board"], int(match["players"]))


def node_id_problem(node_id: str) -> str | None:
    """Why ``node_id`` is not a valid node id, or None when it is."""
    if not node_id:
        return "must not be empty"
    if ":" in node_id or "/" in node_id or node_id.count(".") >= 1:
        return f"{node_id!r} looks like an address or path; use a name such as 'gpu-node-1'"
    if not NODE_ID_PATTERN.match(node_id):
        return (
            f"{node_id!r} is not a node id: use 1-63 lower-case letters, digits, '-' or '_', "
            "starting with a letter or digit"
        )
    return None


class Validator:
    """Collects field violations of one request."""

    def __init__(self) -> None:
        self._violations: list[FieldViolation] = []

    def fail(self, field: str, description: str) -> None:
        self._violations.append(FieldViolation(field, description))

    def require(self, field: str, value: object, description: str = "is required") -> None:
        if not value:
            self.fail(field, description)

    def check(self, field: str, ok: bool, description: str) -> None:
        if not ok:
            self.fail(field, description)

    def node_id(self, field: str, value: str) -> None:
        problem = node_id_problem(value)
        if problem:
            self.fail(field, problem)

    def config_key(self, field: str, value: str, required: bool = True) -> None:
        if not value:
            if required:
                self.fail(field, "is required (e.g. 'square8_2p')")
            return
        try:
            parse_config_key(value)
        except ValueError as exc:
            self.fail(field, str(exc))

    def max_length(self, field: str, value: str, limit: int) -> None:
        if len(value) > limit:
            self.fail(field, f"is {len(value)} characters long; the limit is {limit}")

    def raise_if_invalid(self) -> None:
        if self._violations:
            raise InvalidArgument(self._violations)
