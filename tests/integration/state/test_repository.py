"""The SQL state repository against SQLite and PostgreSQL: fencing, a gap-free event
log in commit order, idempotent publishing and optimistic state versions."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest
from sqlalchemy import inspect

from ringrift_runtime.db import Database, MigrationFailed, migrate, schema_version, upgrade
from ringrift_runtime.errors import Conflict, StaleEpoch, WrongState
from ringrift_state.adapters.migrations import HEAD
from ringrift_state.adapters.sql import SqlStateRepository
from ringrift_state.adapters.tables import metadata
from ringrift_state.domain.model import EventFilter, NewEvent
from ringrift_state.main import MIGRATIONS
from tests.integration.state.conftest import claim_until

JOB_SUBMITTED, NODE_JOINED = 1, 9


@pytest.fixture
async def repository(database_url: str):
    db = Database(database_url)
    await migrate(db, MIGRATIONS)
    repo = SqlStateRepository(db)
    try:
        yield repo
    finally:
        await repo.close()


async def test_migrations_create_the_tables_the_queries_use(repository, database_url: str) -> None:
    db = Database(database_url)
    try:
        columns = await db.read(
            lambda sync: {t: {c["name"] for c in inspect(sync).get_columns(t)} for t in metadata.tables}
        )
    finally:
        await db.dispose()
    assert columns == {name: {c.name for c in table.columns} for name, table in metadata.tables.items()}


async def test_migrate_twice_is_harmless(repository, database_url: str) -> None:
    db = Database(database_url)
    try:
        await migrate(db, MIGRATIONS)
    finally:
        await db.dispose()
    assert (await repository.get_epoch()).epoch == 0


def test_the_head_the_service_starts_at_is_alembic_s_head() -> None:
    """StateService compares the database's revision with HEAD to skip the migrations'
    child: a new migration that does not move HEAD fails here."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_heads() == [HEAD]


async def test_upgrade_migrates_in_a_child_once_and_then_only_reads(database_url: str) -> None:
    db = Database(database_url)
    try:
        assert await schema_version(db) is None
        assert await upgrade(db, MIGRATIONS, HEAD) is True  # the child ran
        assert await schema_version(db) == HEAD
        assert await upgrade(db, MIGRATIONS, HEAD) is False  # at the head: one read, no child
        await SqlStateRepository(db).persist_state("n", "k", b"v", 0, 0)  # the tables are there
    finally:
        await db.dispose()


async def test_a_failed_migration_says_why_and_changes_nothing(database_url: str, tmp_path: Path) -> None:
    db = Database(database_url)
    try:
        with pytest.raises(MigrationFailed, match=r"exit 1.*Path doesn't exist") as raised:
            await upgrade(db, tmp_path / "no-migrations", HEAD)
        assert db.url not in str(raised.value)  # it may hold a password
        assert await schema_version(db) is None
    finally:
        await db.dispose()


def _migration_children() -> list[psutil.Process]:
    """Our children running the migrations."""
    found = []
    for child in psutil.Process().children():
        try:
            if "ringrift_runtime.db_migrate" in child.cmdline():
                found.append(child)
        except psutil.NoSuchProcess:  # it ended meanwhile
            continue
    return found


async def test_a_cancelled_upgrade_kills_its_child_and_a_later_one_migrates(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        task = asyncio.create_task(upgrade(db, MIGRATIONS, HEAD))
        while not _migration_children():
            assert not task.done(), "the upgrade ended before its child was seen"
            await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert _migration_children() == []  # killed and reaped, not left running
        assert await upgrade(db, MIGRATIONS, HEAD) is True
        assert await schema_version(db) == HEAD
    finally:
        await db.dispose()


def test_a_started_state_service_on_sqlite_has_not_loaded_alembic_nor_the_async_engine(tmp_path: Path) -> None:
    """Alembic, Mako and Pygments (~11 MiB resident) stay out of a running StateService
    and the co-host: its composition root does not import them and its migrations run in
    a child. On SQLite, SQLAlchemy's asyncio extension (with the ORM and greenlet, ~6 MiB)
    stays out too: only PostgreSQL uses it."""
    code = f"""
import asyncio, sys
import ringrift_cohost.main
from ringrift_runtime.db import Database, upgrade
from ringrift_state.adapters.migrations import HEAD
from ringrift_state.main import MIGRATIONS
async def main():
    db = Database({f"sqlite:///{tmp_path / 'state.db'}"!r})
    print(await upgrade(db, MIGRATIONS, HEAD))
    await db.dispose()
asyncio.run(main())
print(sorted(name for name in sys.modules if name.split(".")[0] in ("alembic", "mako", "pygments", "greenlet")
             or name.startswith(("sqlalchemy.ext.asyncio", "sqlalchemy.orm"))))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.splitlines() == ["True", "[]"], out.stdout + out.stderr


async def test_the_upgrade_to_per_node_counts_marks_the_unfinished_gpu_jobs(database_url: str) -> None:
    """Migration 0007 adds needs_gpu and fills it in from the stored spec for jobs not yet
    ended, so GPU jobs running across the upgrade are still counted on their nodes."""
    from sqlalchemy import DateTime, bindparam, text

    from ringrift.common.v1 import common_pb2
    from ringrift_state.adapters.sql_jobs import SqlJobRepository

    db = Database(database_url)
    try:
        await migrate(db, MIGRATIONS, target="0006")
        gpu = common_pb2.JobSpec(kind="train", requirements=common_pb2.ResourceRequirements(needs_gpu=True))
        cpu = common_pb2.JobSpec(kind="selfplay")
        rows = [("J-GPU-RUN", gpu, 4, "n1"), ("J-CPU-RUN", cpu, 4, "n1"), ("J-GPU-DONE", gpu, 5, "n1")]

        def insert_old_rows(connection) -> None:
            for job_id, spec, state, node_id in rows:
                connection.execute(
                    text(
                        "INSERT INTO jobs (job_id, kind, config_key, spec, state, attempt, node_id, created_at,"
                        " updated_at, error, permanent, result_json, priority, max_attempts) VALUES (:id, :kind,"
                        " '', :spec, :state, 1, :node, :now, :now, '', false, '', 0, 3)"
                    ).bindparams(bindparam("now", type_=DateTime(timezone=True))),
                    {"id": job_id, "kind": spec.kind, "spec": spec.SerializeToString(), "state": state,
                     "node": node_id, "now": datetime.now(UTC)},
                )  # fmt: skip

        await db.write(insert_old_rows)
        await migrate(db, MIGRATIONS)
        assert await SqlJobRepository(db).on_nodes() == [("n1", 2, 1)]
    finally:
        await db.dispose()


async def test_epochs_are_issued_in_order_once_per_election_key(repository) -> None:
    assert (await repository.get_epoch()).epoch == 0
    previous, current = await repository.claim_epoch("key-a", "leader-a")
    assert (previous.epoch, current.epoch, current.leader_id) == (0, 1, "leader-a")
    again = await repository.claim_epoch("key-a", "leader-a")  # a retried claim: the same term
    assert (again[0].epoch, again[1].epoch) == (1, 1)
    previous, current = await repository.claim_epoch("key-b", "leader-b")  # the next term
    assert (previous.epoch, current.epoch, current.leader_id) == (1, 2, "leader-b")
    assert (await repository.advance_epoch(2, "leader-b")).epoch == 2  # the current leader: idempotent
    with pytest.raises(WrongState):
        await repository.advance_epoch(2, "leader-a")  # not its epoch
    with pytest.raises(StaleEpoch) as caught:
        await repository.advance_epoch(1, "leader-a")
    assert (caught.value.received, caught.value.highest) == (1, 2)
    with pytest.raises(WrongState):
        await repository.advance_epoch(10**9, "intruder")  # an epoch can no longer be chosen by its caller
    record = await repository.get_epoch()
    assert (record.epoch, record.leader_id) == (2, "leader-b") and record.advanced_at is not None


async def test_a_write_under_an_epoch_never_issued_is_refused_and_changes_nothing(repository) -> None:
    """The attack of the first build: one write with epoch 2**62 made every genuine leader
    stale for good. Now an epoch above the highest issued is refused."""
    await claim_until(repository, 3)
    with pytest.raises(WrongState):
        await repository.append_event(NewEvent(type=NODE_JOINED, source="intruder", epoch=2**62))
    with pytest.raises(WrongState):
        await repository.persist_state("loops", "queue", b"x", 0, epoch=2**62)
    assert await repository.last_sequence() == 0 and (await repository.get_epoch()).epoch == 3
    stored = await repository.append_event(NewEvent(type=NODE_JOINED, source="gateway", epoch=3))
    assert stored.sequence == 1  # the genuine leader still writes


async def test_events_are_read_with_the_head_in_one_transaction(repository) -> None:
    assert await repository.read_events(0, EventFilter(), 10) == (0, [])
    for n in range(5):
        await repository.append_event(
            NewEvent(type=NODE_JOINED if n % 2 else JOB_SUBMITTED, source="s", subject=f"j{n}")
        )
    head, found = await repository.read_events(1, EventFilter(), 2)
    assert head == 5 and [e.sequence for e in found] == [2, 3]  # at most the limit, oldest first
    head, found = await repository.read_events(0, EventFilter(types=frozenset({NODE_JOINED})), 10)
    assert head == 5 and [e.event.subject for e in found] == ["j1", "j3"]
    assert found == [e for e in await repository.list_events(0, EventFilter(), 10) if e.event.type == NODE_JOINED]


async def test_stale_writes_change_nothing(repository) -> None:
    await claim_until(repository, 9)
    with pytest.raises(StaleEpoch):
        await repository.append_event(NewEvent(type=NODE_JOINED, source="gateway", epoch=7))
    with pytest.raises(StaleEpoch):
        await repository.persist_state("loops", "queue", b"x", 0, epoch=8)
    assert await repository.last_sequence() == 0
    assert await repository.load_state("loops", "queue") is None
    stored = await repository.append_event(NewEvent(type=NODE_JOINED, source="gateway", epoch=9))
    assert stored.sequence == 1
    await repository.append_event(NewEvent(type=NODE_JOINED, source="agent"))  # epoch 0: not a leader write
    assert await repository.last_sequence() == 2


async def test_concurrent_appends_get_contiguous_sequences(repository) -> None:
    results = await asyncio.gather(
        *(repository.append_event(NewEvent(type=JOB_SUBMITTED, source=f"s{i}", subject=f"job-{i}")) for i in range(40))
    )
    assert sorted(r.sequence for r in results) == list(range(1, 41))
    listed = await repository.list_events(0, EventFilter(), 100)
    assert [e.sequence for e in listed] == list(range(1, 41))
    assert {e.event.subject for e in listed} == {f"job-{i}" for i in range(40)}


async def test_readers_never_see_a_gap_while_writers_commit(repository) -> None:
    """Sequences commit in order: a reader never sees N+1 before N."""
    stop = asyncio.Event()
    gaps: list[tuple[int, int]] = []

    async def reader() -> int:
        last = 0
        while not stop.is_set() or last < 60:
            for stored in await repository.list_events(last, EventFilter(), 1000):
                if stored.sequence != last + 1:
                    gaps.append((last, stored.sequence))
                last = stored.sequence
            await asyncio.sleep(0)
        return last

    async def writer(index: int) -> None:
        for step in range(10):
            await repository.append_event(NewEvent(type=JOB_SUBMITTED, source=f"w{index}", subject=str(step)))

    reading = asyncio.ensure_future(reader())
    await asyncio.gather(*(writer(i) for i in range(6)))
    stop.set()
    assert await reading == 60
    assert gaps == []


async def test_idempotency_key_returns_the_first_event(repository) -> None:
    first = await repository.append_event(NewEvent(type=NODE_JOINED, source="a", idempotency_key="k1"))
    again = await repository.append_event(NewEvent(type=NODE_JOINED, source="b", idempotency_key="k1"))
    assert again.sequence == first.sequence and again.event.source == "a"
    nxt = await repository.append_event(NewEvent(type=NODE_JOINED, source="c"))
    assert nxt.sequence == first.sequence + 1  # the duplicate consumed no sequence


async def test_event_filters(repository) -> None:
    await repository.append_event(NewEvent(type=JOB_SUBMITTED, source="s", config_key="square8_2p", subject="j1"))
    await repository.append_event(NewEvent(type=NODE_JOINED, source="s", subject="n1", attributes={"k": "v"}))
    await repository.append_event(NewEvent(type=JOB_SUBMITTED, source="s", config_key="hex8_3p", subject="j2"))
    by_type = await repository.list_events(0, EventFilter(types=frozenset({JOB_SUBMITTED})), 10)
    assert [e.event.subject for e in by_type] == ["j1", "j2"]
    by_config = await repository.list_events(0, EventFilter(config_key="hex8_3p"), 10)
    assert [e.event.subject for e in by_config] == ["j2"]
    by_subject = await repository.list_events(0, EventFilter(subject="n1"), 10)
    assert by_subject[0].event.attributes == {"k": "v"}
    assert [e.sequence for e in await repository.list_events(1, EventFilter(), 1)] == [2]


async def test_state_values_are_versioned(repository) -> None:
    assert await repository.persist_state("scheduler", "boosts", b"v1", 0, 0) == 1
    with pytest.raises(Conflict):
        await repository.persist_state("scheduler", "boosts", b"again", 0, 0)
    assert await repository.persist_state("scheduler", "boosts", b"v2", 1, 0) == 2
    with pytest.raises(Conflict):
        await repository.persist_state("scheduler", "boosts", b"late", 1, 0)
    loaded = await repository.load_state("scheduler", "boosts")
    assert loaded is not None and (loaded.value, loaded.version) == (b"v2", 2)
    assert await repository.load_state("scheduler", "other") is None


async def test_sqlite_commits_are_on_disk_when_acknowledged(tmp_path: Path) -> None:
    """WAL with synchronous=FULL: every commit is fsynced before it returns (NORMAL would
    lose the last commits to a power cut), with foreign keys on."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'state.db'}")
    try:
        pragmas = await db.read(
            lambda connection: {
                name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "synchronous", "foreign_keys")
            }
        )
    finally:
        await db.dispose()
    assert pragmas == {"journal_mode": "wal", "synchronous": 2, "foreign_keys": 1}  # 2 is FULL


async def test_a_transaction_that_raises_commits_nothing(repository, database_url: str) -> None:
    """Database.write commits what its function did only when it returns: on SQLite (the
    whole function in one worker thread) and PostgreSQL (over asyncpg) alike."""
    from sqlalchemy import insert

    from ringrift_state.adapters.tables import state_values

    db = Database(database_url)
    try:

        def half_done(connection) -> None:
            connection.execute(
                insert(state_values).values(namespace="n", key="k", value=b"v", version=1, updated_at=datetime.now(UTC))
            )
            raise RuntimeError("after the insert")

        with pytest.raises(RuntimeError, match="after the insert"):
            await db.write(half_done)
        assert await repository.load_state("n", "k") is None
        await repository.persist_state("n", "k", b"v", 0, 0)
        assert (await repository.load_state("n", "k")).version == 1
    finally:
        await db.dispose()


async def test_sqlite_urls_with_and_without_the_old_async_driver_name_open_the_same_file(tmp_path: Path) -> None:
    """Settings written for the async driver (sqlite+aiosqlite://) keep working beside
    plain sqlite:// URLs: both name the same file."""
    path = tmp_path / "state.db"
    old, new = Database(f"sqlite+aiosqlite:///{path}"), Database(f"sqlite:///{path}")
    try:
        await migrate(old, MIGRATIONS)
        await SqlStateRepository(old).persist_state("n", "k", b"v", 0, 0)
        assert await SqlStateRepository(new).load_state("n", "k") is not None
    finally:
        await old.dispose()
        await new.dispose()


def test_database_url_errors_are_clear(tmp_path: Path) -> None:
    from ringrift_runtime.settings import SettingsError

    with pytest.raises(SettingsError, match="not a database URL"):
        Database("state.db")
    with pytest.raises(SettingsError, match="use the async driver"):
        Database("postgresql+psycopg2://u@h/db")
    with pytest.raises(SettingsError, match="a SQLite URL is sqlite:"):
        Database(f"sqlite+pysqlcipher:///{tmp_path}/x.db")
    with pytest.raises(SettingsError, match="SQLite needs a file"):
        Database("sqlite+aiosqlite:///:memory:")
    with pytest.raises(SettingsError, match="unsupported database"):
        Database("mysql+aiomysql://u@h/db")


async def test_events_past_their_retention_are_compacted_and_reading_after_them_is_out_of_range(repository) -> None:
    """Retention of the event log: compaction deletes what was recorded before the window
    (oldest first, contiguous), once; reading from 0 starts at the oldest kept, reading or
    watching after a deleted sequence is OUT_OF_RANGE naming the oldest available, a
    restarted StateService knows the floor, and the shared pager resumes at it."""
    from ringrift_contracts.paging import read_after
    from ringrift_runtime.errors import OutOfRange
    from ringrift_state.domain.usecases import StateUseCases

    uses = StateUseCases(repository, 0.05, 2)  # pages of two
    quiet = uses.watch(1, EventFilter(types=frozenset({NODE_JOINED})))  # matches nothing until the end
    waiting = asyncio.ensure_future(anext(quiet))
    old = [await uses.publish(NewEvent(JOB_SUBMITTED, "test", subject=f"j{n}")) for n in range(5)]
    await asyncio.sleep(0.05)
    kept = [await uses.publish(NewEvent(JOB_SUBMITTED, "test", subject=f"j{n}")) for n in range(5, 8)]
    assert await uses.compact(kept[0].time) == 5
    assert await uses.compact(kept[0].time) == 0  # nothing more is that old
    floor = old[-1].sequence
    restarted = StateUseCases(repository, 0.05, 2)
    await restarted.load_floor()
    everything = EventFilter()
    for state in (uses, restarted):
        assert [e.event.subject for e in await state.list_events(0, everything, 10)] == ["j5", "j6"]  # a page of two
        with pytest.raises(OutOfRange) as missed:
            await state.list_events(old[1].sequence, everything, 10)
        assert missed.value.oldest_available == floor + 1 and f"oldest available is {floor + 1}" in missed.value.message
        assert [e.event.subject for e in await state.list_events(floor, everything, 10)] == ["j5", "j6"]
        with pytest.raises(OutOfRange):
            await anext(state.watch(old[0].sequence, everything))

        async def fetch(after: int, state=state):
            return await state.list_events(after, everything, 10)

        resumed = await read_after(fetch, old[2].sequence, lambda e: e.sequence)
        assert [e.event.subject for e in resumed] == ["j5", "j6", "j7"]
    assert await repository.events_floor() == floor and await repository.last_sequence() == kept[-1].sequence
    # A filtered watch that matched nothing has read past the compacted events all along.
    joined = await uses.publish(NewEvent(NODE_JOINED, "test", subject="node-1"))
    assert (await asyncio.wait_for(waiting, 5)).sequence == joined.sequence
    await quiet.aclose()
    await uses.close()
    await restarted.close()


async def test_live_watches_share_one_read_per_append_and_see_what_a_filtered_read_sees(repository) -> None:
    """Twelve watches (three filters, four each, two started behind) follow 30 appends:
    each gets exactly the repository's filtered answer, in order, without a gap or a
    repeat, while the repository is read a few times per append, not once per watch."""
    from ringrift_state.domain.usecases import StateUseCases

    reads = 0
    listing, reading = repository.list_events, repository.read_events

    async def counted(after: int, event_filter: EventFilter, limit: int):
        nonlocal reads
        reads += 1
        return await listing(after, event_filter, limit)

    async def counted_with_head(after: int, event_filter: EventFilter, limit: int):
        nonlocal reads
        reads += 1
        return await reading(after, event_filter, limit)

    repository.list_events = counted
    repository.read_events = counted_with_head
    uses = StateUseCases(repository, 5.0, 100)  # a long poll: only appends move the watches
    await uses.publish(NewEvent(JOB_SUBMITTED, "test", subject="before-1", config_key="sq8"))
    await uses.publish(NewEvent(NODE_JOINED, "test", subject="before-2"))
    filters = [
        EventFilter(),
        EventFilter(types=frozenset({NODE_JOINED})),
        EventFilter(types=frozenset({JOB_SUBMITTED}), config_key="sq8", subject="j-3"),
    ]
    watches = [(f, uses.watch(after, f)) for f in filters for after in (0, 0, 2, 2)]
    received: list[list[int]] = [[] for _ in watches]

    async def follow(index: int, events, until: int) -> None:
        async for stored in events:
            received[index].append(stored.sequence)
            if stored.sequence >= until:
                return

    await asyncio.sleep(0.1)
    publishing = [
        NewEvent(NODE_JOINED if n % 3 == 0 else JOB_SUBMITTED, "test", subject=f"j-{n % 5}", config_key="sq8")
        for n in range(30)
    ]
    expected = {}
    last = 2 + len(publishing)
    tasks = [asyncio.ensure_future(follow(index, events, last)) for index, (_, events) in enumerate(watches)]
    await asyncio.sleep(0.2)  # every watch is live
    before = reads
    for event in publishing:
        await uses.publish(event)
        await asyncio.sleep(0.01)
    everything = await repository.list_events(0, EventFilter(), 100)
    for index, (event_filter, _) in enumerate(watches):
        after = (0, 0, 2, 2)[index % 4]
        expected[index] = [e.sequence for e in await listing(after, event_filter, 100)]
        if not expected[index] or expected[index][-1] < last:  # it stops at the last event only if it matches
            tasks[index].cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    live_reads = reads - before
    for index in range(len(watches)):
        assert received[index] == expected[index], (index, received[index], expected[index])
    assert [e.sequence for e in everything] == list(range(1, last + 1))
    assert live_reads <= 2 * len(publishing), live_reads  # not 12 watches x 30 appends
    for _, events in watches:
        await events.aclose()
    await uses.close()
