"""Database plumbing without business meaning: async engines (SQLite with WAL, or
PostgreSQL by URL) and Alembic migrations run over the engine's own connection."""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from ringrift_runtime.settings import SettingsError

log = logging.getLogger("ringrift.db")

SQLITE_BUSY_TIMEOUT_MS = 10_000
# Any constant works; it only has to be the same for every replica of the service.
MIGRATION_LOCK_KEY = 0x52494E47


def create_engine(url: str, sqlite_synchronous: str = "FULL") -> AsyncEngine:
    """An async engine for ``url``: sqlite+aiosqlite (WAL, ``sqlite_synchronous``: FULL
    unless told otherwise) or postgresql+asyncpg."""
    try:
        parsed = make_url(url)
    except Exception:
        raise SettingsError("state.database_url is not a database URL (e.g. sqlite+aiosqlite:///state.db)") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.drivername != "sqlite+aiosqlite":
            raise SettingsError("state.database_url: use the async driver, e.g. sqlite+aiosqlite:///path/state.db")
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        if sqlite_synchronous not in ("FULL", "NORMAL"):
            raise SettingsError("state.sqlite_synchronous: FULL or NORMAL")
        event.listen(engine.sync_engine, "connect", partial(_sqlite_pragmas, sqlite_synchronous))
        return engine
    if backend == "postgresql":
        if parsed.drivername != "postgresql+asyncpg":
            raise SettingsError("state.database_url: use the async driver, e.g. postgresql+asyncpg://user@host/db")
        return create_async_engine(parsed, pool_pre_ping=True)
    raise SettingsError(
        f"state.database_url: unsupported database {backend!r}; use sqlite+aiosqlite or postgresql+asyncpg"
    )


def _sqlite_pragmas(synchronous: str, dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # FULL: a commit is on disk when it returns, so what StateService acknowledges (a job
    # transition, a promotion) survives power loss; NORMAL in WAL mode may lose the last
    # commits to a power cut. The cost is measured in BENCHMARKS.md (jobs_throughput).
    cursor.execute(f"PRAGMA synchronous={synchronous}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


async def migrate(engine: AsyncEngine, script_location: Path, target: str = "head") -> None:
    """Upgrade the schema to ``target`` with the Alembic scripts at ``script_location``.

    On PostgreSQL an advisory lock serialises replicas migrating at the same time."""

    def upgrade(connection: Connection) -> None:
        config = Config()
        config.set_main_option("script_location", str(script_location))
        config.attributes["connection"] = connection
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        command.upgrade(config, target)

    async with engine.begin() as connection:
        await connection.run_sync(upgrade)
    log.info("database schema at %s", target)
