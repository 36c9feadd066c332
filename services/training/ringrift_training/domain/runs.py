"""A training run: export, train, gauntlet, then promotion or rejection. Its whole state
is written to StateService's event log at every stage change (TRAINING_STAGE_CHANGED,
attributes = the run), so any coordinator replica, after any failover, reads the same
runs back by folding those events: the last event of a run is the run."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any


class Stage(Enum):
    EXPORTING = "exporting"
    TRAINING = "training"
    EVALUATING = "evaluating"
    PROMOTED = "promoted"
    REJECTED = "rejected"
    FAILED = "failed"


FINISHED = {Stage.PROMOTED, Stage.REJECTED, Stage.FAILED}


@dataclass(frozen=True)
class ModelRef:
    model_id: str
    config_key: str
    generation: int
    path: str
    sha256: str
    node_id: str = ""


@dataclass(frozen=True)
class Lineage:
    """What a model was trained from: training files, per self-play job its node and games."""

    training_files: list[str]
    sources: list[dict[str, Any]]  # {"job_id", "node_id", "games", "skipped"}
    skipped_games: int = 0


@dataclass(frozen=True)
class Job:
    job_id: str
    state: str  # active | succeeded | failed | cancelled | lost
    result: dict[str, Any]
    error: str = ""


@dataclass
class Run:
    run_id: str
    config_key: str
    stage: Stage = Stage.EXPORTING
    trigger_key: str = ""
    node_id: str = ""
    tried_nodes: list[str] = field(default_factory=list)
    export_job_id: str = ""
    training_job_id: str = ""
    # "<purpose>:<job id>" with purpose "baselines" or "incumbent".
    gauntlet_jobs: list[str] = field(default_factory=list)
    accounted_jobs: list[str] = field(default_factory=list)
    candidate_model_id: str = ""
    candidate_path: str = ""
    generation: int = 0
    parent_model_id: str = ""
    parent_path: str = ""
    # Opponent -> [wins, losses, draws] of the candidate.
    tallies: dict[str, list[int]] = field(default_factory=dict)
    # Opponent -> unit totals in the order played (half points per opening from every seat).
    units: dict[str, list[int]] = field(default_factory=dict)
    units_requested: int = 0  # openings asked of gauntlet jobs against the incumbent
    reason: str = ""
    started_at: float = 0.0
    finished_at: float = 0.0
    step: int = 0  # bumps at every save: the idempotency key of the stage event

    @property
    def finished(self) -> bool:
        return self.stage in FINISHED

    def attributes(self) -> dict[str, str]:
        data = asdict(self)
        data["stage"] = self.stage.value
        return {k: v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}

    @classmethod
    def from_attributes(cls, attributes: dict[str, str]) -> Run:
        values: dict[str, Any] = {}
        for name, spec in cls.__dataclass_fields__.items():
            if name not in attributes or name == "stage":
                continue
            raw = attributes[name]
            values[name] = raw if spec.type in ("str", str) else json.loads(raw)
        values["stage"] = Stage(attributes.get("stage", Stage.EXPORTING.value))
        return cls(**values)


def fold(runs: dict[str, Run], events: list[tuple[int, dict[str, str]]]) -> list[tuple[int, str]]:
    """Apply stage events (sequence, attributes) in sequence order. Only a strictly newer
    step replaces a run: the run object a driver is advancing (its unsaved changes
    included) stays in place when its own saved events come back. A malformed event is
    passed over; returns those as (sequence, why)."""
    skipped: list[tuple[int, str]] = []
    for sequence, attributes in events:
        try:
            run = Run.from_attributes(attributes)
            if not run.run_id:
                raise ValueError("it names no run")
        except (ValueError, TypeError, KeyError) as exc:
            skipped.append((sequence, f"not a training run: {exc}"))
            continue
        current = runs.get(run.run_id)
        if current is None or run.step > current.step:
            runs[run.run_id] = run
    return skipped
