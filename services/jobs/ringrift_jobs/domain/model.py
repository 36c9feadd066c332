"""What JobService reasons about, as plain values. The adapters build these from the
contracts' messages and keep the message itself in ``wire`` so that what a caller gets
back is exactly what StateService stored; domain code never looks inside ``wire``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ringrift_contracts.jobs import JobState


@dataclass(frozen=True)
class Spec:
    """A job's specification: what runs, and what placement needs to know."""

    kind: str
    config_key: str = ""
    params: Mapping[str, str] = field(default_factory=dict)
    timeout_seconds: float = 0.0
    max_attempts: int = 0
    top_up: bool = False
    needs_gpu: bool = False
    traceparent: str = ""  # the trace the job's dispatch, run and reports continue
    group: bytes = b""  # equal for specs that place alike (one ranking serves them all)
    wire: Any = None  # the JobSpec message as submitted


@dataclass(frozen=True)
class AttemptView:
    attempt: int
    node_id: str
    started_at: datetime | None


@dataclass(frozen=True)
class Job:
    job_id: str
    attempt: int
    state: JobState
    node_id: str
    spec: Spec
    updated_at: datetime | None = None
    attempts: tuple[AttemptView, ...] = ()
    wire: Any = None  # the Job message as StateService returned it

    def attempt_view(self, attempt: int = 0) -> AttemptView | None:
        """The given attempt (0: the current one)."""
        wanted = attempt or self.attempt
        return next((a for a in self.attempts if a.attempt == wanted), None)


@dataclass
class Transition:
    """A state change asked of StateService's job table, which decides whether it applies."""

    job_id: str
    attempt: int
    to_state: JobState
    from_state: JobState | None = None
    node_id: str = ""
    exit_code: int = 0
    error: str = ""
    result_json: str = ""
    retry: bool = False
    not_before: datetime | None = None
    permanent: bool = False
    reported_by: str = ""  # the reporting agent's node (from its certificate)
    cpu_seconds: float = 0.0  # the attempt's measured CPU time (0: unknown, keeps the recorded value)


@dataclass(frozen=True)
class Outcome:
    job_id: str
    applied: bool
    reason: str = ""
    job: Job | None = None


@dataclass(frozen=True)
class Report:
    """An agent's report about one attempt it runs."""

    job_id: str
    attempt: int
    node_id: str
    state: JobState
    exit_code: int = 0
    error: str = ""
    result_json: str = ""
    reported_by: str = ""  # the node the reporting agent's certificate names ("" on an insecure cluster)
    cpu_seconds: float = 0.0


@dataclass(frozen=True)
class Node:
    """A member as dispatch sees it."""

    node_id: str
    address: str
    job_kinds: frozenset[str] = frozenset()
    job_slots: int = 0
    gpu_count: int = 0


@dataclass(frozen=True)
class LogChunk:
    stream: int
    data: bytes
