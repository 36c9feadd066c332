"""Placement rules (BEHAVIOUR.md, NodeSelector), written once.

Pure functions define each rule; ``NodeIndex`` keeps every member's facts in numpy
arrays, updated one row per membership change, so a placement over 10,000 nodes is a
few vectorised masks and a partial sort instead of a Python loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ringrift_nodes.domain.model import ROLE_BITS, JobNeeds, NodeView, Rejection, Reservation, Score
from ringrift_settings import NodeSelectorSettings

KIND_ROLE = {
    "selfplay": "selfplay",
    "train": "training",
    "training": "training",
    "gauntlet": "gauntlet",
    "validate": "gauntlet",
    "export": "export",
}
REJECTIONS = list(Rejection)
_CODE = {rejection: code for code, rejection in enumerate(REJECTIONS)}
MB_PER_GB = 1024


def required_role(needs: JobNeeds) -> str | None:
    return needs.role or KIND_ROLE.get(needs.kind)


def ram_estimate_mb(needs: JobNeeds, estimates_gb: dict[str, float]) -> float:
    """RAM a job needs: its declared minimum, else the estimate for its kind."""
    if needs.min_free_ram_mb:
        return float(needs.min_free_ram_mb)
    if needs.kind == "selfplay":
        if needs.needs_gpu:
            key = "selfplay_policy" if needs.engine == "policy" else "selfplay_gpu"
        else:
            key = "selfplay_heuristic" if needs.engine == "heuristic" else "selfplay_search"
    elif needs.kind in ("train", "training"):
        key = "training"
    elif needs.kind in ("gauntlet", "validate", "evaluation"):
        key = "evaluation"
    else:
        key = "default"
    return estimates_gb.get(key, estimates_gb["default"]) * MB_PER_GB


def gpu_power(model: str, count: int, table: list[tuple[str, float]], unknown: float) -> float:
    """Table power of the GPU model (first pattern contained in it) times the GPU count
    the node reports; 0 without GPUs."""
    if count <= 0:
        return 0.0
    upper = model.upper()
    for pattern, power in table:
        if pattern.upper() in upper:
            return power * count
    return unknown * count


def is_weak_gpu(model: str, patterns: list[str]) -> bool:
    upper = model.upper()
    return any(pattern.upper() in upper for pattern in patterns)


def load_score(node: NodeView) -> float:
    """0..100, lower is better."""
    job_score = min(100.0, (node.selfplay_jobs + 2 * node.training_jobs) * 12.5)
    load = 0.4 * node.cpu_percent + 0.3 * node.memory_percent + 0.3 * job_score
    if node.gpu_count > 0:
        load = 0.7 * load + 0.3 * node.gpu_percent
    return load


def reservation_admits(reservation: Reservation, role: str | None) -> bool:
    """A node reserved for a purpose takes only that purpose's work (a trainer reserved
    for training also runs the export that feeds it)."""
    if role == reservation.purpose:
        return True
    return reservation.purpose == "training" and role == "export"


class NodeIndex:
    """Columnar view of the members, one row per node."""

    COLUMNS: ClassVar[dict[str, type]] = {
        "gpu_power": np.float64,
        "cpu_power": np.float64,
        "gpu_memory": np.float64,
        "free_ram": np.float64,
        "roles": np.int64,
        "draining": np.bool_,
        "quarantined": np.bool_,
        "disk": np.float64,
        "memory": np.float64,
        "load": np.float64,
        "weak": np.bool_,
        "has_gpu": np.bool_,
    }

    def __init__(self, settings: NodeSelectorSettings, capacity: int = 64) -> None:
        self._settings = settings
        self.ids: list[str] = []
        self.rows: dict[str, int] = {}
        self.views: dict[str, NodeView] = {}
        self._columns: dict[str, np.ndarray] = {
            name: np.zeros(capacity, dtype=dtype) for name, dtype in self.COLUMNS.items()
        }
        self._kind_columns: dict[str, np.ndarray] = {}
        self.measured_nodes = 0

    def supports(self, kind: str) -> np.ndarray:
        """Per row: the node's agent runs ``kind`` (or advertises no kinds). The column
        is built on the first request for a kind and then kept current row by row."""
        column = self._kind_columns.get(kind)
        if column is None:
            column = np.zeros(len(self._columns["load"]), dtype=np.bool_)
            for row, node_id in enumerate(self.ids):
                column[row] = self._supports(self.views[node_id], kind)
            self._kind_columns[kind] = column
        return column[: len(self.ids)]

    @staticmethod
    def _supports(view: NodeView, kind: str) -> bool:
        return not view.job_kinds or kind in view.job_kinds

    def __len__(self) -> int:
        return len(self.ids)

    def column(self, name: str) -> np.ndarray:
        return self._columns[name][: len(self.ids)]

    def upsert(self, view: NodeView) -> None:
        row = self.rows.get(view.node_id)
        if row is None:
            row = len(self.ids)
            if row == len(self._columns["load"]):
                for columns in (self._columns, self._kind_columns):
                    for name, column in columns.items():
                        columns[name] = np.concatenate([column, np.zeros_like(column)])
            self.ids.append(view.node_id)
            self.rows[view.node_id] = row
        else:
            self.measured_nodes -= bool(self.views[view.node_id].throughput)
        self.views[view.node_id] = view
        self.measured_nodes += bool(view.throughput)
        settings = self._settings
        values = {
            "gpu_power": gpu_power(view.gpu_model, view.gpu_count, settings.gpu_power, settings.unknown_gpu_power),
            "cpu_power": float(view.cpu_cores),
            "gpu_memory": float(view.gpu_memory_mb),
            "free_ram": float(view.free_ram_mb),
            "roles": sum(ROLE_BITS[r] for r in view.roles if r in ROLE_BITS),
            "draining": view.draining,
            "quarantined": view.quarantined,
            "disk": view.disk_percent,
            "memory": view.memory_percent,
            "load": load_score(view),
            "weak": view.gpu_count > 0 and is_weak_gpu(view.gpu_model, settings.weak_gpu_patterns),
            "has_gpu": view.gpu_count > 0,
        }
        for name, value in values.items():
            self._columns[name][row] = value
        for kind, column in self._kind_columns.items():
            column[row] = self._supports(view, kind)

    def remove(self, node_id: str) -> None:
        row = self.rows.pop(node_id, None)
        if row is None:
            return
        self.measured_nodes -= bool(self.views.pop(node_id).throughput)
        last = len(self.ids) - 1
        if row != last:
            moved = self.ids[last]
            self.ids[row] = moved
            self.rows[moved] = row
            for column in [*self._columns.values(), *self._kind_columns.values()]:
                column[row] = column[last]
        self.ids.pop()


@dataclass(frozen=True)
class Evaluation:
    """One job evaluated against every row of the index."""

    code: np.ndarray  # rejection code per row (0 = usable)
    power: np.ndarray  # measured throughput where known, else GPU or CPU power
    effective: np.ndarray  # power with the locality bonus
    measured: np.ndarray
    needed_ram: float


class Selector:
    """Filters and ranks the members of a NodeIndex for a job."""

    def __init__(self, index: NodeIndex, settings: NodeSelectorSettings) -> None:
        self.index = index
        self._settings = settings

    def _evaluate(self, needs: JobNeeds, reservations: dict[str, Reservation], now: float) -> Evaluation:
        index, settings = self.index, self._settings
        size = len(index)
        code = np.zeros(size, dtype=np.int8)

        def reject(mask: np.ndarray, rejection: Rejection) -> None:
            code[(code == 0) & mask] = _CODE[rejection]

        reject(index.column("draining"), Rejection.DRAINING)
        reject(index.column("quarantined"), Rejection.QUARANTINED)
        role = required_role(needs)
        if reservations:
            reserved = np.zeros(size, dtype=np.bool_)
            for node_id, reservation in reservations.items():
                row = index.rows.get(node_id)
                if row is not None and reservation.expires_at > now and not reservation_admits(reservation, role):
                    reserved[row] = True
            reject(reserved, Rejection.RESERVED)
        reject(index.column("disk") >= settings.disk_limit_percent, Rejection.DISK_FULL)
        reject(index.column("memory") >= settings.memory_limit_percent, Rejection.MEMORY_PRESSURE)
        if role is not None:
            reject((index.column("roles") & ROLE_BITS[role]) == 0, Rejection.MISSING_ROLE)
        if needs.needs_gpu:
            reject(~index.column("has_gpu"), Rejection.NO_GPU)
        if needs.min_gpu_memory_mb:
            reject(index.column("gpu_memory") < needs.min_gpu_memory_mb, Rejection.INSUFFICIENT_GPU_MEMORY)
        needed_ram = ram_estimate_mb(needs, settings.ram_estimate_gb) + settings.system_reserve_gb * MB_PER_GB
        reject(index.column("free_ram") < needed_ram, Rejection.INSUFFICIENT_RAM)
        if needs.labels:
            mismatched = np.array(
                [any(index.views[n].labels.get(k) != v for k, v in needs.labels.items()) for n in index.ids],
                dtype=np.bool_,
            )
            reject(mismatched, Rejection.LABEL_MISMATCH)
        if needs.gpu_tree_search:
            reject(index.column("weak"), Rejection.WEAK_GPU)
        reject(~index.supports(needs.kind), Rejection.UNSUPPORTED_KIND)
        if needs.required_nodes:
            pinned = np.zeros(size, dtype=np.bool_)
            for node_id in needs.required_nodes:
                row = index.rows.get(node_id)
                if row is not None:
                    pinned[row] = True
            reject(~pinned, Rejection.NOT_REQUESTED)

        base = index.column("gpu_power") if needs.needs_gpu else index.column("cpu_power")
        measured = np.zeros(size)
        if index.measured_nodes:
            measured = np.array([index.views[n].throughput.get(needs.kind, 0.0) for n in index.ids])
        power = np.where(measured > 0, measured, base)
        factor = np.ones(size)
        for node_id in needs.preferred_nodes:
            row = index.rows.get(node_id)
            if row is not None:
                factor[row] = self._settings.locality_factor
        return Evaluation(code, power, power * factor, measured, needed_ram)

    def _score(self, row: int, evaluation: Evaluation, rank: int = 0) -> Score:
        index = self.index
        rejection = REJECTIONS[evaluation.code[row]]
        return Score(
            node_id=index.ids[row],
            usable=rejection is Rejection.NONE,
            rejection=rejection,
            detail=self._detail(row, rejection, evaluation.needed_ram),
            gpu_power=float(index.column("gpu_power")[row]),
            cpu_power=float(index.column("cpu_power")[row]),
            load=float(index.column("load")[row]),
            locality_bonus=float(evaluation.effective[row] - evaluation.power[row]),
            measured_throughput=float(evaluation.measured[row]),
            effective_power=float(evaluation.effective[row]),
            rank=rank,
        )

    def _detail(self, row: int, rejection: Rejection, needed_ram: float) -> str:
        index, settings = self.index, self._settings
        view = index.views[index.ids[row]]
        return {
            Rejection.NONE: "",
            Rejection.DRAINING: "node is draining",
            Rejection.QUARANTINED: "node is quarantined",
            Rejection.RESERVED: "node is reserved for another purpose",
            Rejection.DISK_FULL: f"disk {view.disk_percent:.0f}% >= {settings.disk_limit_percent:.0f}%",
            Rejection.MEMORY_PRESSURE: f"memory {view.memory_percent:.0f}% >= {settings.memory_limit_percent:.0f}%",
            Rejection.MISSING_ROLE: f"node roles {sorted(view.roles)} lack the job's role",
            Rejection.NO_GPU: "job needs a GPU; node has none",
            Rejection.INSUFFICIENT_GPU_MEMORY: f"GPU memory {view.gpu_memory_mb} MiB below the job's minimum",
            Rejection.INSUFFICIENT_RAM: f"free RAM {view.free_ram_mb} MiB < {needed_ram:.0f} MiB needed "
            "(incl. system reserve)",
            Rejection.LABEL_MISMATCH: "a required label is missing or differs",
            Rejection.WEAK_GPU: f"{view.gpu_model} is too weak for GPU tree search",
            Rejection.NOT_MEMBER: "not a member",
            Rejection.UNSUPPORTED_KIND: f"the node's agent runs only {sorted(view.job_kinds)}",
            Rejection.NOT_REQUESTED: "the job is pinned to other nodes",
        }[rejection]

    def explain(self, needs: JobNeeds, reservations: dict[str, Reservation], now: float) -> list[Score]:
        """Every member's score or rejection; usable ones first, by rank."""
        evaluation = self._evaluate(needs, reservations, now)
        ranked = self._order(evaluation, len(self.index), exclude=frozenset())
        ranks = {row: position + 1 for position, row in enumerate(ranked)}
        scores = [self._score(row, evaluation, ranks[row]) for row in ranked]
        scores += [self._score(row, evaluation) for row in range(len(self.index)) if row not in ranks]
        return scores

    def rank(
        self,
        needs: JobNeeds,
        reservations: dict[str, Reservation],
        now: float,
        k: int,
        exclude: frozenset[str],
        only: frozenset[str] | None = None,
    ) -> list[Score]:
        """The best ``k`` usable nodes (among ``only`` when given), best first."""
        evaluation = self._evaluate(needs, reservations, now)
        rows = self._order(evaluation, k, exclude, only)
        return [self._score(row, evaluation, rank + 1) for rank, row in enumerate(rows)]

    def score(self, node_id: str, needs: JobNeeds, reservations: dict[str, Reservation], now: float) -> Score | None:
        row = self.index.rows.get(node_id)
        if row is None:
            return None
        evaluation = self._evaluate(needs, reservations, now)
        rank = 0
        if evaluation.code[row] == 0:
            rank = self._order(evaluation, len(self.index), frozenset()).index(row) + 1
        return self._score(row, evaluation, rank)

    def _order(
        self, evaluation: Evaluation, k: int, exclude: frozenset[str], only: frozenset[str] | None = None
    ) -> list[int]:
        """Rows of usable nodes (among ``only`` when given) by (-effective power, load),
        the first ``k``."""
        effective = evaluation.effective
        usable = evaluation.code == 0
        if only is not None:
            named = np.zeros_like(usable)
            named[[row for node_id in only if (row := self.index.rows.get(node_id)) is not None]] = True
            usable &= named
        for node_id in exclude:
            row = self.index.rows.get(node_id)
            if row is not None:
                usable[row] = False
        candidates = np.flatnonzero(usable)
        if candidates.size == 0:
            return []
        load = self.index.column("load")
        if k == 1:
            power = effective[candidates]
            best = candidates[power == power.max()]
            return [int(best[np.argmin(load[best])])]
        if k < candidates.size:
            # Keep every node tied with the k-th best power, then order exactly.
            threshold = np.partition(effective[candidates], candidates.size - k)[candidates.size - k]
            candidates = candidates[effective[candidates] >= threshold]
        order = np.lexsort((load[candidates], -effective[candidates]))
        return [int(row) for row in candidates[order[:k]]]
