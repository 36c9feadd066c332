"""The agent's model of one job attempt: what it records, how it ended, what a restarted
agent does about it, and which process group may be signalled. Pure: the runner
(adapters/runner.py) owns the processes and files and asks this module what to do."""

from __future__ import annotations

import enum
import signal
from dataclasses import dataclass, fields
from typing import Any

from ringrift_contracts.jobs import ATTEMPT_ENDED, ATTEMPT_LIVE, JobState


@dataclass
class Attempt:
    """One attempt of one job on this node, as persisted in its work directory."""

    job_id: str
    attempt: int
    kind: str
    config_key: str
    work_dir: str
    argv: list[str]
    timeout_seconds: float
    epoch: int
    state: JobState = JobState.STARTING
    pid: int = 0  # the wrapper's pid, which leads the job's process group
    pid_created: float = 0.0  # its start time, so a recycled pid is never taken for it
    started_at: float = 0.0
    finished_at: float = 0.0
    exit_code: int = 0
    error: str = ""
    result_json: str = ""
    cpu_seconds: float = 0.0  # measured by the wrapper at exit; 0 while unknown
    traceparent: str = ""  # the RunJob call's trace context: the reports continue it
    cancel_requested: bool = False
    # Why the agent killed it on its own (its lease lapsed: the leader may run the job
    # elsewhere); it ends LOST with this error.
    fenced: str = ""
    # The job moved on to another attempt (or ended) while this one ran: it ends CANCELLED.
    superseded: bool = False
    # Its template's limits (0: none): resident memory of the process group, CPU seconds
    # and open files (rlimits); and why it was stopped for going past one.
    memory_mb: int = 0
    cpu_limit_seconds: int = 0
    open_files: int = 0
    limit_exceeded: str = ""

    @property
    def key(self) -> tuple[str, int]:
        return (self.job_id, self.attempt)

    @property
    def ended(self) -> bool:
        return self.state in ATTEMPT_ENDED

    @property
    def live(self) -> bool:
        return self.state in ATTEMPT_LIVE

    def process_group(self) -> int | None:
        """The process group to signal, or None when there is none of its own: a pid of 0
        (not spawned yet) would signal the agent's own group, a negative one every process."""
        return self.pid if self.pid > 0 else None

    def deadline(self) -> float:
        """Unix time by which the attempt must have ended."""
        return self.started_at + self.timeout_seconds

    def persisted(self) -> dict[str, Any]:
        record = {f.name: getattr(self, f.name) for f in fields(self)}
        record["state"] = int(self.state)
        return record

    @classmethod
    def from_persisted(cls, record: dict[str, Any]) -> Attempt:
        """The attempt a state.json recorded (unknown keys ignored). A cancel that was under
        way when the agent stopped is not carried over: the process is judged afresh."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in record.items() if k in known and k not in ("cancel_requested", "superseded")}
        values["state"] = JobState(int(values.get("state", JobState.STARTING)))
        return cls(**values)

    def report(self, node_id: str) -> dict[str, Any]:
        """What the agent tells JobService about this attempt now."""
        return {
            "job_id": self.job_id,
            "attempt": self.attempt,
            "node_id": node_id,
            "state": int(self.state),
            "exit_code": self.exit_code,
            "error": self.error,
            "result_json": self.result_json,
            "cpu_seconds": self.cpu_seconds,
            "traceparent": self.traceparent,
        }


@dataclass(frozen=True)
class Ending:
    state: JobState
    exit_code: int = 0
    error: str = ""
    collect_result: bool = False  # read result.json


def ending(attempt: Attempt, exit_code: int | None) -> Ending:
    """How an attempt whose process has gone ended: LOST when the agent fenced it (killed
    it because its lease lapsed) before it finished, cancelled when a cancel was asked or
    the job moved on without it, LOST when the wrapper recorded no exit code (it was
    killed), else by its exit code."""
    if attempt.fenced and exit_code is None:
        return Ending(JobState.LOST, error=attempt.fenced)
    if attempt.superseded:
        return Ending(JobState.CANCELLED, error="superseded: the job moved on to another attempt")
    if attempt.cancel_requested:
        return Ending(JobState.CANCELLED, error="cancelled")
    if attempt.limit_exceeded:
        return Ending(JobState.FAILED, exit_code=exit_code or 0, error=attempt.limit_exceeded)
    cpu = attempt.cpu_limit_seconds
    if cpu and (exit_code == -signal.SIGXCPU or (exit_code == -signal.SIGKILL and attempt.cpu_seconds >= cpu)):
        return Ending(JobState.FAILED, exit_code=exit_code, error=f"CPU time limit of {cpu}s exceeded")
    if exit_code is None:
        return Ending(JobState.LOST, error="the job process ended without recording an exit code")
    if exit_code == 0:
        return Ending(JobState.SUCCEEDED, collect_result=True)
    return Ending(JobState.FAILED, exit_code=exit_code, error=f"exit code {exit_code}")


def timed_out(attempt: Attempt) -> Ending:
    return Ending(JobState.FAILED, error=f"timed out after {attempt.timeout_seconds:.0f}s")


class Recovery(enum.Enum):
    """What a restarted agent does about an attempt it finds on disk."""

    NOTHING = "nothing"  # it had ended: remembered, not reported again
    ADOPT = "adopt"  # still running: watch it again
    CONCLUDE = "conclude"  # it ended while the agent was down: report how
    LOST = "lost"  # gone without a trace


def recovery(attempt: Attempt, alive: bool, exit_recorded: bool) -> Recovery:
    if attempt.ended:
        return Recovery.NOTHING
    if attempt.state == JobState.RUNNING and alive:
        return Recovery.ADOPT
    if exit_recorded:
        return Recovery.CONCLUDE
    return Recovery.LOST


LOST_ON_RESTART = "the agent restarted and the job process is gone"
