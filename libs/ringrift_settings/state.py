"""StateService's settings."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ringrift_runtime.settings import Section


class StateSettings(Section):
    """StateService's database."""

    database_url: str = "sqlite:///./ringrift-state.db"
    # Watchers are woken at least this often to poll for events written by other replicas
    # (on PostgreSQL those wake them at their commit too, by NOTIFY: this is the safety net).
    event_poll_seconds: float = Field(default=1.0, gt=0)
    # PostgreSQL: the connection that listens for those NOTIFYs is asked a query this often,
    # and taken again when it does not answer within as long: a NAT or firewall that dropped
    # it in silence costs at most twice this, not TCP's many minutes (and the queries keep
    # an idle mapping from being dropped).
    listen_check_seconds: float = Field(default=10.0, gt=0)
    # PostgreSQL: a statement not answered within this is given up (UNAVAILABLE to the
    # caller) and the pool's connections dropped, the next call connecting afresh; over a
    # connection a NAT or firewall forgot in silence it would wait until TCP gives up. No
    # unary call waits longer anyway (client.deadline_seconds).
    database_timeout_seconds: float = Field(default=10.0, gt=0)
    # Maximum events per ListEvents page / WatchEvents catch-up batch.
    event_batch_size: int = Field(default=500, ge=1, le=10_000)
    # Retention: events recorded more than this many days ago are deleted (checked every
    # event_compaction_seconds); reading after a deleted sequence is OUT_OF_RANGE naming the
    # oldest kept one, and reading from 0 starts there.
    event_retention_days: float = Field(default=30.0, gt=0)
    event_compaction_seconds: float = Field(default=3600.0, gt=0)
    # Retention: each config keeps its newest this many rating fits (ListRatings with
    # history); the matches stay, so ratings can always be fitted again.
    rating_fits_kept: int = Field(default=500, ge=1)
    # SQLite only: FULL fsyncs every commit before StateService acknowledges it (a job
    # transition, a promotion survives power loss); NORMAL (WAL) may lose the last commits
    # to a power cut, never to a process crash. The cost is in BENCHMARKS.md.
    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"
    # This instance is one of several serving one database at once (compose's state-2
    # beside state): PostgreSQL only. Every write takes the database's cluster row lock
    # first, so the epoch and the event sequence stay single; a forgotten URL would give
    # this instance a database of its own, so it refuses to start instead.
    replicated: bool = False

    @model_validator(mode="after")
    def _replicas_share_postgres(self) -> StateSettings:
        if self.replicated and not self.database_url.startswith("postgresql"):
            raise ValueError(
                "state.replicated: several StateService instances must share one PostgreSQL database; "
                "set state.database_url (RINGRIFT_STATE_DB in compose) to postgresql+asyncpg://..."
            )
        return self
