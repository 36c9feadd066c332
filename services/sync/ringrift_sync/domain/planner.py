"""Sync planning: which files move where, from which source, within which limits.

Role-targeted, never "everything everywhere": the goal names the kind of data and the
config; the targets are the nodes that need it. Files are matched by sha256 (a target
that holds the same content under any path is skipped). Among the holders, the source
with the fewest transfers out (active plus already planned) is chosen, which spreads load.
No transfer may push a target's disk above the limit. Transfers run smallest first, so
large files are staggered behind the small ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum


class Goal(Enum):
    GAMES_TO_TRAINER = "games"
    TRAINING_TO_TRAINER = "training"
    MODEL_TO_PLAYERS = "models"


@dataclass(frozen=True)
class DataFile:
    path: str
    kind: str  # games | training | models
    config_key: str
    size: int
    sha256: str
    game_count: int = 0
    mtime: float = 0.0


@dataclass
class NodeFiles:
    node_id: str
    files: list[DataFile]
    disk_percent: float
    disk_free: int

    def holds(self, sha256: str) -> bool:
        return any(f.sha256 == sha256 for f in self.files)

    def disk_total(self) -> int:
        if self.disk_percent >= 100:
            return self.disk_free  # a full disk: any transfer exceeds the limit
        return int(self.disk_free / (1 - self.disk_percent / 100)) if self.disk_free else 0


@dataclass(frozen=True)
class Transfer:
    transfer_id: str
    source: str
    target: str
    file: DataFile


@dataclass(frozen=True)
class Skip:
    file: DataFile
    target: str
    reason: str


@dataclass
class Plan:
    plan_id: str
    goal: Goal
    config_key: str
    transfers: list[Transfer] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        return sum(t.file.size for t in self.transfers)


def wanted_files(
    goal: Goal, config_key: str, manifests: dict[str, NodeFiles], model_sha256: str = ""
) -> list[DataFile]:
    """The files the goal is about, one per content (sha256), from every manifest."""
    unique: dict[str, DataFile] = {}
    for manifest in manifests.values():
        for f in manifest.files:
            if f.kind != goal.value or f.config_key != config_key:
                continue
            if goal is Goal.MODEL_TO_PLAYERS and f.sha256 != model_sha256:
                continue
            unique.setdefault(f.sha256, f)
    return sorted(unique.values(), key=lambda f: (f.size, f.path))


def make_plan(
    plan_id: str,
    goal: Goal,
    config_key: str,
    files: list[DataFile],
    manifests: dict[str, NodeFiles],
    targets: list[str],
    busy_out: dict[str, int],
    disk_limit_percent: float,
    new_id: Callable[[], str],
) -> Plan:
    plan = Plan(plan_id, goal, config_key)
    out_load = dict(busy_out)
    incoming: dict[str, int] = {}
    for file in files:
        holders = [n for n, m in manifests.items() if m.holds(file.sha256)]
        for target in targets:
            manifest = manifests.get(target)
            if manifest is None:
                plan.skipped.append(Skip(file, target, "target did not report a manifest"))
                continue
            if manifest.holds(file.sha256):
                plan.skipped.append(Skip(file, target, "already present (same sha256)"))
                continue
            total = manifest.disk_total()
            used = total - manifest.disk_free + incoming.get(target, 0) + file.size
            if total <= 0 or 100.0 * used / total > disk_limit_percent:
                percent = 100.0 * used / total if total > 0 else 100.0
                plan.skipped.append(
                    Skip(file, target, f"disk guard: would reach {percent:.0f}% (limit {disk_limit_percent:.0f}%)")
                )
                continue
            sources = [h for h in holders if h != target]
            if not sources:
                plan.skipped.append(Skip(file, target, "no reachable node holds it"))
                continue
            source = min(sources, key=lambda n: (out_load.get(n, 0), n))
            out_load[source] = out_load.get(source, 0) + 1
            incoming[target] = incoming.get(target, 0) + file.size
            plan.transfers.append(Transfer(new_id(), source, target, file))
    plan.transfers.sort(key=lambda t: (t.file.size, t.file.path, t.target))
    return plan
