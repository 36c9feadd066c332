"""NodeSelector domain model: what the selector knows of a node and of a job."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

ROLES = ("selfplay", "training", "gauntlet", "export")
ROLE_BITS = {role: 1 << index for index, role in enumerate(ROLES)}


class Rejection(Enum):
    """Why a node may not take a job, in the order the checks apply."""

    NONE = "none"
    NOT_MEMBER = "not_member"
    DRAINING = "draining"
    QUARANTINED = "quarantined"
    RESERVED = "reserved"
    DISK_FULL = "disk_full"
    MEMORY_PRESSURE = "memory_pressure"
    MISSING_ROLE = "missing_role"
    NO_GPU = "no_gpu"
    INSUFFICIENT_GPU_MEMORY = "insufficient_gpu_memory"
    INSUFFICIENT_RAM = "insufficient_ram"
    LABEL_MISMATCH = "label_mismatch"
    WEAK_GPU = "weak_gpu"
    UNSUPPORTED_KIND = "unsupported_kind"
    NOT_REQUESTED = "not_requested"


@dataclass(frozen=True)
class NodeView:
    node_id: str
    gpu_model: str = ""
    gpu_count: int = 0
    gpu_memory_mb: int = 0
    cpu_cores: int = 1
    ram_mb: int = 0
    free_ram_mb: int = 0
    roles: frozenset[str] = frozenset(ROLES)
    labels: dict[str, str] = field(default_factory=dict)
    draining: bool = False
    quarantined: bool = False
    cpu_percent: float = 0.0
    memory_percent: float = 0.0
    disk_percent: float = 0.0
    gpu_percent: float = 0.0
    selfplay_jobs: int = 0
    training_jobs: int = 0
    # Measured jobs per hour by kind; replaces declared power where known.
    throughput: dict[str, float] = field(default_factory=dict)
    # Kinds the node's agent can run; empty: not advertised (no restriction).
    job_kinds: frozenset[str] = frozenset()


@dataclass(frozen=True)
class JobNeeds:
    kind: str
    needs_gpu: bool = False
    min_gpu_memory_mb: int = 0
    min_free_ram_mb: int = 0  # 0: the estimate for the kind
    role: str | None = None  # None: derived from the kind
    labels: dict[str, str] = field(default_factory=dict)
    preferred_nodes: frozenset[str] = frozenset()
    required_nodes: frozenset[str] = frozenset()  # empty: any node
    gpu_tree_search: bool = False
    engine: str = ""  # self-play engine, for the RAM estimate (heuristic, search, policy)


@dataclass(frozen=True)
class Reservation:
    node_id: str
    purpose: str  # a role name, e.g. "training"
    holder: str
    expires_at: float  # unix time


@dataclass(frozen=True)
class Score:
    node_id: str
    usable: bool
    rejection: Rejection
    detail: str
    gpu_power: float
    cpu_power: float
    load: float
    locality_bonus: float
    measured_throughput: float
    effective_power: float
    rank: int = 0
