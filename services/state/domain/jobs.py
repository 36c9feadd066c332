"""The job state table (BEHAVIOUR.md, JobManager), enforced here and nowhere else.

A job moves through PENDING -> SCHEDULED -> STARTING -> RUNNING -> SUCCEEDED | FAILED |
CANCELLED | LOST. A retriable failure or a loss starts the next attempt of the same job
(back to PENDING). Transitions about an attempt other than the job's current one are
recorded on that attempt only and change nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum


class JobState(IntEnum):
    """Values match ringrift.common.v1.JobState."""

    PENDING = 1
    SCHEDULED = 2
    STARTING = 3
    RUNNING = 4
    SUCCEEDED = 5
    FAILED = 6
    CANCELLED = 7
    LOST = 8


TERMINAL = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})
ACTIVE = frozenset({JobState.SCHEDULED, JobState.STARTING, JobState.RUNNING})

LEGAL: dict[JobState, frozenset[JobState]] = {
    JobState.PENDING: frozenset({JobState.SCHEDULED, JobState.CANCELLED, JobState.FAILED}),
    JobState.SCHEDULED: frozenset(
        {JobState.STARTING, JobState.RUNNING, JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.LOST}
    ),
    JobState.STARTING: frozenset(
        {JobState.RUNNING, JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.LOST}
    ),
    JobState.RUNNING: frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.LOST}),
    JobState.LOST: frozenset({JobState.FAILED, JobState.CANCELLED}),
    JobState.SUCCEEDED: frozenset(),
    JobState.FAILED: frozenset(),
    JobState.CANCELLED: frozenset(),
}
# A retry (next attempt) may follow a failure or a loss of the current attempt.
RETRIABLE = frozenset({JobState.FAILED, JobState.LOST})


def transition_problem(current: JobState, target: JobState, retry: bool) -> str | None:
    """Why ``current -> target`` is not allowed, or None."""
    if retry and target not in RETRIABLE:
        return f"only a FAILED or LOST attempt can be retried, not {target.name}"
    if target not in LEGAL[current]:
        return f"illegal transition {current.name} -> {target.name}"
    return None


@dataclass(frozen=True)
class Transition:
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


@dataclass(frozen=True)
class NewJob:
    kind: str
    config_key: str
    spec: bytes  # the serialized JobSpec, opaque to the store
    priority: int = 0
    max_attempts: int = 3
    idempotency_key: str = ""


@dataclass(frozen=True)
class AttemptRecord:
    attempt: int
    node_id: str
    state: JobState
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    exit_code: int
    error: str


@dataclass(frozen=True)
class JobRecord:
    job_id: str
    kind: str
    config_key: str
    spec: bytes
    state: JobState
    attempt: int
    node_id: str
    idempotency_key: str
    created_at: datetime
    updated_at: datetime
    not_before: datetime | None
    error: str
    permanent: bool
    result_json: str
    priority: int
    max_attempts: int
    attempts: tuple[AttemptRecord, ...] = field(default=())


@dataclass(frozen=True)
class Outcome:
    job_id: str
    applied: bool
    reason: str
    job: JobRecord | None


@dataclass(frozen=True)
class JobQuery:
    states: frozenset[JobState] = frozenset()
    kind: str = ""
    config_key: str = ""
    node_id: str = ""
    ready_before: datetime | None = None  # only jobs whose not_before has passed
    oldest_first: bool = False
