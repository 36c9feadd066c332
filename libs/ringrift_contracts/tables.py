"""The protos' enums by name, one table each: how a value is shown, typed on the
command line, or used as a folder or setting name. For api/ and adapters/ (it imports
the generated code); domain code works with the names."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ringrift.agent.v1 import agent_pb2
from ringrift.common.v1 import common_pb2
from ringrift.state.v1 import state_pb2


class EnumTable:
    """Values of one proto enum and their lower-case names without the common prefix
    (JOB_STATE_PENDING <-> "pending"); the UNSPECIFIED value has no name."""

    def __init__(self, enum: Any, prefix: str, names: dict[int, str] | None = None) -> None:
        self.enum = enum
        self.prefix = prefix
        generated = {v: enum.Name(v).removeprefix(prefix).lower() for v in enum.values() if v}
        self.names: dict[int, str] = names if names is not None else generated
        self.values: dict[str, int] = {name: value for value, name in self.names.items()}

    def name(self, value: int, default: str = "unspecified") -> str:
        return self.names.get(value, default)

    def value(self, name: str) -> int | None:
        return self.values.get(name.lower())

    def known(self, value: int) -> bool:
        return value in self.names

    def choices(self) -> str:
        return ", ".join(self.names.values())

    def of(self, names: Iterable[str]) -> list[int]:
        return [self.values[n] for n in names if n in self.values]


JOB_STATES = EnumTable(common_pb2.JobState, "JOB_STATE_")
MODEL_STATUSES = EnumTable(common_pb2.ModelStatus, "MODEL_STATUS_")
EVENT_TYPES = EnumTable(common_pb2.EventType, "EVENT_TYPE_")
ROLES = EnumTable(common_pb2.NodeRole, "NODE_ROLE_")
# Kinds of data files and the data-directory folder each lives in.
FILE_KINDS = EnumTable(
    common_pb2.FileKind,
    "FILE_KIND_",
    {
        common_pb2.FILE_KIND_GAMES: "games",
        common_pb2.FILE_KIND_TRAINING: "training",
        common_pb2.FILE_KIND_MODEL: "models",
        common_pb2.FILE_KIND_OTHER: "other",
    },
)
PARAM_TYPES = EnumTable(agent_pb2.ParamType, "PARAM_TYPE_")
TRANSFER_STATES = EnumTable(state_pb2.TransferState, "TRANSFER_STATE_")


def role_names(node: common_pb2.NodeInfo) -> frozenset[str]:
    """The roles a node declared, by name."""
    return frozenset(ROLES.names[r] for r in node.declared.roles if r in ROLES.names)


def __getattr__(name: str) -> EnumTable:
    """LOOP_HEALTH, built on first use: the orchestrator's proto imports every service's
    (~2.5 MiB in each agent, which never shows a loop's health)."""
    if name == "LOOP_HEALTH":
        from ringrift.orchestrator.v1 import orchestrator_pb2

        table = EnumTable(orchestrator_pb2.LoopHealth, "LOOP_HEALTH_")
        globals()[name] = table
        return table
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
