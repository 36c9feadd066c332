"""Node roles between their contract enum (ringrift.common.v1.NodeRole) and the names
settings and domain code use. One table for every service."""

from __future__ import annotations

from ringrift.common.v1 import common_pb2

ROLE_NAMES: dict[int, str] = {
    common_pb2.NODE_ROLE_SELFPLAY: "selfplay",
    common_pb2.NODE_ROLE_TRAINING: "training",
    common_pb2.NODE_ROLE_GAUNTLET: "gauntlet",
    common_pb2.NODE_ROLE_EXPORT: "export",
}
ROLE_CODES: dict[str, int] = {name: code for code, name in ROLE_NAMES.items()}


def role_names(node: common_pb2.NodeInfo) -> frozenset[str]:
    """The roles a node declared, by name."""
    return frozenset(ROLE_NAMES[r] for r in node.declared.roles if r in ROLE_NAMES)
