"""Composition root of the state service: build(settings) -> app; nothing built at import."""

from __future__ import annotations

import asyncio
import logging
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ringrift_contracts import access
from ringrift_runtime.aio import cancel_and_wait
from ringrift_runtime.db import Database, upgrade
from ringrift_runtime.grpc.contracts import SERVICE_BY_PROCESS
from ringrift_runtime.grpc.server import Bound, registration
from ringrift_runtime.process import run_service
from ringrift_runtime.security.context import Security
from ringrift_runtime.security.identity import Kind
from ringrift_settings import RingriftSettings
from ringrift_state.adapters.leaders import EtcdLeaderKeys
from ringrift_state.adapters.migrations import HEAD
from ringrift_state.adapters.sql import EVENTS_CHANNEL, SqlStateRepository
from ringrift_state.adapters.sql_jobs import SqlJobRepository
from ringrift_state.adapters.sql_registry import SqlRegistry
from ringrift_state.adapters.startup_check import check_loaded_state
from ringrift_state.api.servicer import StateServicer
from ringrift_state.domain.usecases import StateUseCases

NAME = "state"
log = logging.getLogger("ringrift.state")
MIGRATIONS = Path(__file__).parent / "adapters" / "migrations"


class StateApp:
    name = NAME

    def __init__(self, settings: RingriftSettings) -> None:
        self.security = Security.of(settings)
        self.access = access  # who may call what (ringrift_contracts.access)
        self.security.require(Kind.SERVICE, NAME)
        self._db = Database(
            settings.state.database_url, settings.state.sqlite_synchronous, settings.state.database_timeout_seconds
        )
        self.repository = SqlStateRepository(self._db)
        self.leaders = EtcdLeaderKeys(settings.etcd)
        self.use_cases = StateUseCases(
            self.repository, settings.state.event_poll_seconds, settings.state.event_batch_size, self.leaders
        )
        self.jobs = SqlJobRepository(self._db)
        servicer = StateServicer(
            self.use_cases,
            self.jobs,
            SqlRegistry(self._db, settings.state.rating_fits_kept),
            settings.jobs.max_attempts,
        )
        self.registrations = [registration(SERVICE_BY_PROCESS[NAME], servicer)]
        self._settings = settings.state
        self._compaction: asyncio.Task[None] | None = None
        self._listening: asyncio.Task[None] | None = None

    async def start(self, bound: Bound) -> None:
        await upgrade(self._db, MIGRATIONS, HEAD)  # in a child process: Alembic is never loaded here
        await check_loaded_state(self._db)
        await self.use_cases.load_floor()
        self._compaction = asyncio.create_task(self._compact_forever(), name="event-compaction")
        if self._db.shared:  # another replica's events wake this one's watches at its commit
            listening = self._db.listen(
                EVENTS_CHANNEL, self.use_cases.notify, check_seconds=self._settings.listen_check_seconds
            )
            self._listening = asyncio.create_task(listening, name="events")

    async def _compact_forever(self) -> None:
        """Event retention: every event_compaction_seconds, delete what is older than the window."""
        while True:
            try:
                window = timedelta(days=self._settings.event_retention_days)
                await self.use_cases.compact(datetime.now(UTC) - window)
            except Exception:  # the next round tries again; nothing was half done (one transaction a batch)
                log.error("event compaction failed", exc_info=True)
            await asyncio.sleep(self._settings.event_compaction_seconds)

    async def stop(self) -> None:
        await cancel_and_wait(self._compaction)
        await cancel_and_wait(self._listening)
        await self.use_cases.close()
        await self.leaders.close()
        await self.repository.close()


def build(settings: RingriftSettings) -> StateApp:
    return StateApp(settings)


def main() -> None:
    sys.exit(run_service(NAME, build, RingriftSettings))
