"""Identifier rules: job ids, record ids (models, runs, transfers), node ids, job kinds
and config keys. Every service validates with these and nothing else."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Job ids are ULIDs when the cluster makes them; callers may reference any id of this shape.
JOB_ID_PATTERN = re.compile(r"^[0-9A-Za-z][0-9A-Za-z_-]{0,63}$")
# Ids of registry records (models, training runs, sync transfers and plans) may also hold '.'.
RECORD_ID_PATTERN = re.compile(r"^[0-9A-Za-z][0-9A-Za-z_.-]{0,63}$")
NODE_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")
KIND_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
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
            f"{text[:40]!r} is not a config key: expected '<board>_<N>p' with a lower-case board "
            f"and N from {MIN_PLAYERS} to {MAX_PLAYERS}, e.g. 'square8_2p'"
        )
    return ConfigKey(match["board"], int(match["players"]))


def node_id_problem(node_id: str) -> str | None:
    """Why ``node_id`` is not a valid node id, or None when it is."""
    if not node_id:
        return "must not be empty"
    shown = node_id[:40]
    if ":" in node_id or "/" in node_id or "." in node_id:
        return f"{shown!r} looks like an address or path; use a name such as 'gpu-node-1'"
    if not NODE_ID_PATTERN.match(node_id):
        return (
            f"{shown!r} is not a node id: use 1-63 lower-case letters, digits, '-' or '_', "
            "starting with a letter or digit"
        )
    return None


def is_job_id(text: str) -> bool:
    return bool(JOB_ID_PATTERN.match(text))


def is_record_id(text: str) -> bool:
    return bool(RECORD_ID_PATTERN.match(text))


def is_kind(text: str) -> bool:
    return bool(KIND_PATTERN.match(text))
