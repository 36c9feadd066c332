"""The job state table (BEHAVIOUR.md, JobManager), enforced here and nowhere else.

A job moves through PENDING -> SCHEDULED -> STARTING -> RUNNING -> SUCCEEDED | FAILED |
CANCELLED | LOST. A retriable failure or a loss starts the next attempt of the same job
(back to PENDING). Transitions about an attempt other than the job's current one are
recorded on that attempt only and change nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from ringrift_contracts.jobs import ATTEMPT_ENDED, ATTEMPT_LIVE, ON_NODE, TERMINAL, JobState
from ringrift_contracts.limits import MAX_REASON, MAX_STORED_ERROR

__all__ = ["ON_NODE", "TERMINAL", "JobState"]

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
    reported_by: str = ""  # the agent's node that reported it (a report is credited only from there)
    cpu_seconds: float = 0.0  # the attempt's measured CPU time; 0 keeps the recorded value


@dataclass(frozen=True)
class NewJob:
    kind: str
    config_key: str
    spec: bytes  # the serialized JobSpec, opaque to the store
    priority: int = 0
    max_attempts: int = 3
    idempotency_key: str = ""
    needs_gpu: bool = False


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
    cpu_seconds: float = 0.0


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


@dataclass(frozen=True)
class CurrentJob:
    """What the decision needs of a job as it stands (after the earlier transitions of
    the same batch)."""

    job_id: str
    state: JobState
    attempt: int
    node_id: str
    kind: str
    config_key: str


@dataclass(frozen=True)
class AttemptWrite:
    """A write to one attempt's record; ``node_id`` None keeps the recorded node."""

    attempt: int
    state: JobState
    node_id: str | None
    exit_code: int
    error: str
    cpu_seconds: float = 0.0  # 0 keeps the recorded value

    @property
    def started(self) -> bool:
        return self.state in ATTEMPT_LIVE

    @property
    def finished(self) -> bool:
        return self.state in ATTEMPT_ENDED


@dataclass(frozen=True)
class Decision:
    """What one transition does: whether it applies (and why not), the attempt record it
    writes, the job's new column values, and the events it appends."""

    applied: bool
    reason: str = ""
    attempt: AttemptWrite | None = None
    job_changes: dict[str, object] = field(default_factory=dict)
    event_state: JobState | None = None  # the JOB_<state> event, when that state has one
    event_attributes: dict[str, str] = field(default_factory=dict)
    next_attempt: int = 0  # a retry: the attempt that starts PENDING (a JOB_RETRIED event)


def decide(current: CurrentJob | None, t: Transition) -> Decision:
    """Check ``t`` against the state table and say what it writes. A report about an
    attempt other than the current one is recorded on that attempt only."""
    if current is None:
        return Decision(False, f"job {t.job_id} does not exist")
    if t.attempt != current.attempt:
        write = AttemptWrite(t.attempt, t.to_state, None, t.exit_code, t.error[:MAX_STORED_ERROR], t.cpu_seconds)
        return Decision(False, f"attempt {t.attempt} was superseded by attempt {current.attempt}", attempt=write)
    if t.reported_by and t.attempt == current.attempt and current.node_id != t.reported_by:
        placed = current.node_id or "no node yet"
        return Decision(False, f"attempt {t.attempt} is on {placed}, not {t.reported_by}: the report is not credited")
    if t.from_state is not None and current.state != t.from_state:
        return Decision(False, f"job is {current.state.name}, not {t.from_state.name}")
    if current.state == t.to_state and not t.retry:
        return Decision(False, f"job is already {current.state.name}")
    problem = transition_problem(current.state, t.to_state, t.retry)
    if problem:
        return Decision(False, problem)
    node_id = t.node_id or current.node_id
    changes: dict[str, object] = {"state": t.to_state, "node_id": node_id}
    if t.to_state == JobState.SUCCEEDED:
        changes.update(result_json=t.result_json, error="")
    if t.to_state in (JobState.FAILED, JobState.LOST, JobState.CANCELLED):
        changes.update(error=t.error[:MAX_STORED_ERROR], permanent=t.permanent or t.to_state == JobState.CANCELLED)
    attributes = {"attempt": str(t.attempt), "node_id": node_id, "kind": current.kind}
    if t.error:
        attributes["error"] = t.error[:MAX_REASON]
    next_attempt = 0
    if t.retry:
        next_attempt = current.attempt + 1
        changes.update(
            state=JobState.PENDING, attempt=next_attempt, node_id="", not_before=t.not_before, permanent=False
        )
    return Decision(
        True,
        attempt=AttemptWrite(t.attempt, t.to_state, node_id, t.exit_code, t.error[:MAX_STORED_ERROR], t.cpu_seconds),
        job_changes=changes,
        event_state=event_state(current.state, t.to_state),
        event_attributes=attributes,
        next_attempt=next_attempt,
    )


# States whose reaching is an event of its own. JOB_STARTED is the first of STARTING (the
# agent's RunJob answered that the process started) and RUNNING (the agent's own report,
# made only for a job still running a moment later): a job has one JOB_STARTED per attempt.
EVENT_STATES = frozenset(
    {
        JobState.SCHEDULED,
        JobState.STARTING,
        JobState.RUNNING,
        JobState.SUCCEEDED,
        JobState.FAILED,
        JobState.CANCELLED,
        JobState.LOST,
    }
)


def event_state(current: JobState, target: JobState) -> JobState | None:
    """The state whose JOB_<state> event a transition from ``current`` to ``target``
    records, or None."""
    if target == JobState.RUNNING and current == JobState.STARTING:
        return None  # JOB_STARTED was recorded when it became STARTING
    return target if target in EVENT_STATES else None
