"""Database plumbing without business meaning: a Database that runs transactions as
plain functions (SQLite with WAL in worker threads, or PostgreSQL by URL over asyncpg)
and Alembic migrations run as one of them, in a child process when a long-running
service starts (``upgrade``)."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import sqlalchemy
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import InterfaceError, OperationalError

from ringrift_runtime.errors import DependencyUnavailable
from ringrift_runtime.settings import SettingsError

if TYPE_CHECKING:  # imported when a PostgreSQL URL is opened: with the ORM it pulls in, ~6 MiB
    from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger("ringrift.db")

SQLITE_BUSY_TIMEOUT_MS = 10_000
# A SQLite database's threads: one writer (SQLite has one write lock; writers queued in
# one thread never sleep in SQLite's busy handler waiting for each other) and readers,
# which go on beside it (WAL). One pooled connection each.
SQLITE_READERS = 3
T = TypeVar("T")
# Any constant works; it only has to be the same for every replica of the service.
MIGRATION_LOCK_KEY = 0x52494E47
# What says the database could not be reached or did not answer in time (a refused or lost
# connection, a statement past its timeout, SQLite's busy timeout, a full disk), not that
# the request was wrong: DependencyUnavailable (UNAVAILABLE to a caller, who may try again).
UNREACHABLE = (OperationalError, InterfaceError, OSError)


class Database:
    """A database that runs each transaction as one plain function of a synchronous
    Connection: ``await db.write(fn)`` commits what ``fn(connection)`` did (or rolls it
    back when it raises), ``await db.read(fn)`` reads without committing.

    On SQLite the whole function runs in a worker thread over the standard sqlite3
    driver (writes in one writer thread, in order; reads in a few reader threads): one
    thread hop per transaction, where an asyncio driver (aiosqlite) takes one per
    statement. Measured on StateService's schema, a transaction of six
    statements costs 0.30 ms of CPU this way and 2.39 ms through the async engine
    (BENCHMARKS.md). On PostgreSQL the function runs over the asyncpg engine's
    connection (``run_sync``), so both databases run the same code. A caller cancelled
    while its function runs in a thread does not stop it: the transaction still commits
    (or rolls back) as the function decides, as when a reply is lost on the way back;
    what a client retries is idempotent or fenced."""

    def __init__(self, url: str, sqlite_synchronous: str = "FULL", timeout_seconds: float | None = None) -> None:
        try:
            parsed = make_url(url)
        except Exception:
            raise SettingsError("state.database_url is not a database URL (e.g. sqlite:///state.db)") from None
        backend = parsed.get_backend_name()
        self.url = url  # holds the password, if any: never logged
        self._sync: Engine | None = None
        self._async: AsyncEngine | None = None
        self._writer: ThreadPoolExecutor | None = None
        self._readers: ThreadPoolExecutor | None = None
        if backend == "sqlite":
            # sqlite+aiosqlite:// is what settings said before the async driver went.
            if parsed.drivername not in ("sqlite", "sqlite+pysqlite", "sqlite+aiosqlite"):
                raise SettingsError("state.database_url: a SQLite URL is sqlite:///path/state.db")
            if not parsed.database or parsed.database == ":memory:":
                raise SettingsError("state.database_url: SQLite needs a file (sqlite:///path/state.db)")
            if sqlite_synchronous not in ("FULL", "NORMAL"):
                raise SettingsError("state.sqlite_synchronous: FULL or NORMAL")
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            self._sync = sqlalchemy.create_engine(
                parsed.set(drivername="sqlite+pysqlite"),
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
                pool_size=1 + SQLITE_READERS,
                max_overflow=0,
            )
            event.listen(self._sync, "connect", partial(_sqlite_pragmas, sqlite_synchronous))
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
            self._readers = ThreadPoolExecutor(SQLITE_READERS, thread_name_prefix="sqlite-reader")
            self.dialect = "sqlite"
        elif backend == "postgresql":
            if parsed.drivername != "postgresql+asyncpg":
                raise SettingsError("state.database_url: use the async driver, e.g. postgresql+asyncpg://user@host/db")
            from sqlalchemy.ext.asyncio import create_async_engine

            # A statement (the pool's ping too) not answered within timeout_seconds is given
            # up: over a connection a NAT or firewall forgot in silence it would wait until
            # TCP gives up, many minutes.
            connect_args = {"command_timeout": timeout_seconds} if timeout_seconds else {}
            self._async = create_async_engine(parsed, pool_pre_ping=True, connect_args=connect_args)
            self.dialect = "postgresql"
        else:
            raise SettingsError(
                f"state.database_url: unsupported database {backend!r}; use sqlite or postgresql+asyncpg"
            )

    async def write(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` in one transaction and commit it (roll back if it raises)."""
        return await self._run(fn, commit=True)

    async def read(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` in one transaction that is rolled back (it reads)."""
        return await self._run(fn, commit=False)

    @property
    def shared(self) -> bool:
        """Other processes may write to this database (PostgreSQL: replicas share it)."""
        return self._async is not None

    async def listen(
        self, channel: str, on_notify: Callable[[], None], retry_seconds: float = 1.0, check_seconds: float = 10.0
    ) -> None:
        """Call ``on_notify`` at every NOTIFY on ``channel`` (a commit of another process
        that says so), until cancelled: on PostgreSQL over a connection of its own, taken
        again after it is lost (``on_notify`` once each time it listens, for what was
        committed meanwhile). Every ``check_seconds`` the connection is asked a query;
        one that does not answer within ``check_seconds`` is taken as lost too: a
        NAT or firewall that forgot the connection drops its packets in silence, and
        nothing would tell this side until TCP gave up (many minutes). The query also
        keeps such a mapping from idling out. On SQLite it returns at once: one process
        writes."""
        if self._async is None:
            return
        while True:
            try:
                await self._listen_once(self._async, channel, on_notify, check_seconds)
                log.warning("the connection listening on %s was lost; listening again", channel)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the watchers' poll goes on meanwhile
                log.warning("cannot listen on %s (%s); trying again in %.0f s", channel, exc, retry_seconds)
            await asyncio.sleep(retry_seconds)

    @staticmethod
    async def _listen_once(
        engine: AsyncEngine, channel: str, on_notify: Callable[[], None], check_seconds: float
    ) -> None:
        """Listen over one connection until it is lost or stops answering."""
        lost = asyncio.Event()
        async with engine.connect() as connection:
            try:
                raw = (await connection.get_raw_connection()).driver_connection
                assert raw is not None
                raw.add_termination_listener(lambda _connection: lost.set())
                await raw.add_listener(channel, lambda *_notification: on_notify())
                on_notify()
                while True:
                    try:
                        await asyncio.wait_for(lost.wait(), check_seconds)
                        return
                    except TimeoutError:
                        pass
                    try:
                        await asyncio.wait_for(raw.fetchval("SELECT 1"), check_seconds)
                    except TimeoutError:
                        log.warning(
                            "the connection listening on %s did not answer within %.0f s", channel, check_seconds
                        )
                        return
            finally:
                # Never back into the pool still listening (nor one that was lost).
                await asyncio.shield(connection.invalidate())

    async def dispose(self) -> None:
        if self._sync is not None:
            assert self._writer is not None and self._readers is not None
            for threads in (self._writer, self._readers):  # what was queued ends first
                await asyncio.to_thread(threads.shutdown, True)
            await asyncio.to_thread(self._sync.dispose)
        if self._async is not None:
            await self._async.dispose()

    async def _run(self, fn: Callable[[Connection], T], commit: bool) -> T:
        try:
            if self._sync is not None:  # SQLite: writes in the writer thread, reads beside it
                threads = self._writer if commit else self._readers
                return await asyncio.get_running_loop().run_in_executor(threads, self._run_sync, fn, commit)
            assert self._async is not None
            async with self._async.begin() if commit else self._async.connect() as connection:
                return await connection.run_sync(fn)
        except UNREACHABLE as exc:
            raise await self._unreachable(exc) from exc

    async def _unreachable(self, exc: BaseException) -> DependencyUnavailable:
        """What to raise for ``exc``, said without the statement or its values. A statement
        that timed out drops the pool: its other connections went through the same network
        (closing them could wait as long again), and the next call connects afresh."""
        cause = getattr(exc, "orig", None) or exc
        log.warning("database call failed: %s: %.200s", type(cause).__name__, cause)
        if isinstance(cause, TimeoutError):
            if self._async is not None:
                await self._async.dispose(close=False)
            return DependencyUnavailable("the database did not answer in time")
        return DependencyUnavailable(f"the database is unavailable ({type(cause).__name__})")

    def _run_sync(self, fn: Callable[[Connection], T], commit: bool) -> T:
        assert self._sync is not None
        with self._sync.begin() if commit else self._sync.connect() as connection:
            return fn(connection)


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


async def migrate(db: Database, script_location: Path, target: str = "head") -> None:
    """Upgrade the schema to ``target`` with the Alembic scripts at ``script_location``,
    in this process (Alembic is imported here; a long-running service calls ``upgrade``).

    On PostgreSQL an advisory lock serialises replicas migrating at the same time."""
    from alembic import command
    from alembic.config import Config

    def upgrade(connection: Connection) -> None:
        config = Config()
        config.set_main_option("script_location", str(script_location))
        config.attributes["connection"] = connection
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        command.upgrade(config, target)

    await db.write(upgrade)
    log.info("database schema at %s", target)


async def schema_version(db: Database) -> str | None:
    """The Alembic revision the database is at (None: not migrated yet, or several heads)."""

    def read(connection: Connection) -> str | None:
        if not sqlalchemy.inspect(connection).has_table("alembic_version"):
            return None
        versions = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        return versions[0] if len(versions) == 1 else None

    return await db.read(read)


# What a failed migration's child wrote that its error quotes (its last characters).
CHILD_ERROR_CHARS = 2_000


class MigrationFailed(RuntimeError):
    """The migrations' child process failed; the message ends with what it wrote."""


async def upgrade(db: Database, script_location: Path, head: str) -> bool:
    """Bring the schema to ``head``, the newest revision at ``script_location``: nothing
    but one read when it is there already, else the migrations run in a child process
    (``python -m ringrift_runtime.db_migrate``) and this one waits for it. A long-running
    service so never loads Alembic (with Mako and Pygments, ~11 MiB resident that only
    the migrations use); the price is an interpreter's start (~0.5 s of CPU) at a start
    on a database not at the head. The URL goes to the child on its standard input, never
    in its arguments (it may hold a password). Returns whether the child ran.

    A cancelled caller kills the child: its migration's transaction rolls back."""
    if await schema_version(db) == head:
        log.info("database schema at %s", head)
        return False
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ringrift_runtime.db_migrate",
        str(script_location),
        head,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, errors = await child.communicate(db.url.encode())
    except BaseException:
        if child.returncode is None:
            child.kill()
            await child.wait()
        raise
    if child.returncode != 0:
        said = errors.decode(errors="replace").strip()[-CHILD_ERROR_CHARS:]
        raise MigrationFailed(f"the database migrations failed (exit {child.returncode}): {said}")
    log.info("database schema migrated to %s", head)
    return True
