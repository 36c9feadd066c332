"""The job lifecycle's settings (BEHAVIOUR.md, JobManager)."""

from __future__ import annotations

from pydantic import Field, field_validator

from ringrift_runtime.settings import Section


class JobSettings(Section):
    """Job lifecycle (BEHAVIOUR.md, JobManager)."""

    # Timeouts by job kind (s); a job may set its own, "default" covers other kinds.
    timeout_seconds: dict[str, float] = Field(
        default_factory=lambda: {
            "selfplay": 7200.0,
            "train": 86400.0,
            "gauntlet": 7200.0,
            "validate": 7200.0,
            "export": 1800.0,
            "sync": 1800.0,
            "default": 3600.0,
        }
    )
    # A job its agent took is recorded STARTING this long after RunJob answered, unless
    # the agent's first report (its end, for a job that ends sooner) came first: STARTING
    # is then recorded with that report, in its commit. One commit less on a short job's
    # path; 0 records STARTING at once, as a separate commit.
    starting_write_delay_seconds: float = Field(default=0.05, ge=0, le=10)
    # A dispatched job not confirmed running within this is retried on another node.
    spawn_verification_seconds: float = Field(default=30.0, gt=0)
    max_attempts: int = Field(default=3, ge=1, le=20)
    retry_backoff_base_seconds: float = Field(default=30.0, ge=0)
    retry_backoff_max_seconds: float = Field(default=300.0, ge=0)
    # Per-node pause between bulk self-play top-ups.
    dispatch_cooldown_seconds: float = Field(default=120.0, ge=0)
    max_reaps_per_node: int = Field(default=10, ge=1)
    # Terminal jobs stay in the live table this long, then move to history, which keeps
    # them history_retention_days (BEHAVIOUR.md, Retention); the leader's JobCleanup loop
    # applies both.
    retention_seconds: float = Field(default=86400.0, ge=0)
    history_retention_days: float = Field(default=30.0, gt=0)
    max_batch: int = Field(default=1000, ge=1)

    @field_validator("timeout_seconds")
    @classmethod
    def _has_default(cls, value: dict[str, float]) -> dict[str, float]:
        if "default" not in value:
            raise ValueError("needs a 'default' entry")
        return value

    def timeout_for(self, kind: str) -> float:
        return self.timeout_seconds.get(kind, self.timeout_seconds["default"])

    def backoff_seconds(self, failures: int) -> float:
        """min(base * 2^n, max) before the next attempt, n = failures so far - 1."""
        growth = 2.0 ** max(0, failures - 1)
        return min(self.retry_backoff_base_seconds * growth, self.retry_backoff_max_seconds)
