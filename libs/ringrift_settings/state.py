"""StateService's settings."""

from __future__ import annotations

from pydantic import Field

from ringrift_runtime.settings import Section


class StateSettings(Section):
    """StateService's database."""

    database_url: str = "sqlite+aiosqlite:///./ringrift-state.db"
    # Watchers are woken at least this often to poll for events written by other replicas.
    event_poll_seconds: float = Field(default=1.0, gt=0)
    # Maximum events per ListEvents page / WatchEvents catch-up batch.
    event_batch_size: int = Field(default=500, ge=1, le=10_000)
