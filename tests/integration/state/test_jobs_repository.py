"""Jobs in StateService's store, against SQLite and PostgreSQL: unique ids under
concurrency, idempotent creation, the state table, retries as new attempts, superseded
attempts that change nothing, fencing, and JOB_* events written with each change."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from ringrift.common.v1 import common_pb2
from ringrift_runtime.db import Database, migrate
from ringrift_runtime.errors import StaleEpoch
from ringrift_state.adapters.sql import SqlStateRepository
from ringrift_state.adapters.sql_jobs import SqlJobRepository
from ringrift_state.domain.jobs import JobQuery, JobState, NewJob, Transition
from ringrift_state.domain.model import EventFilter
from ringrift_state.main import MIGRATIONS
from tests.integration.state.conftest import claim_until

P, S, R, OK, F, L = (
    JobState.PENDING,
    JobState.SCHEDULED,
    JobState.RUNNING,
    JobState.SUCCEEDED,
    JobState.FAILED,
    JobState.LOST,
)


@pytest.fixture
async def stores(database_url: str):
    db = Database(database_url)
    await migrate(db, MIGRATIONS)
    try:
        yield SqlJobRepository(db), SqlStateRepository(db)
    finally:
        await db.dispose()


def job(kind: str = "sleep", key: str = "") -> NewJob:
    return NewJob(kind=kind, config_key="square8_2p", spec=b"\x0a\x05sleep", idempotency_key=key)


async def test_concurrent_submissions_get_unique_ids_and_keys_deduplicate(stores) -> None:
    jobs, state = stores
    batches = await asyncio.gather(*(jobs.create([job() for _ in range(20)], 0) for _ in range(10)))
    ids = [j.job_id for batch in batches for j, _ in batch]
    assert len(ids) == len(set(ids)) == 200
    first = await jobs.create([job(key="k1"), job(key="k1"), job(key="k2")], 0)
    assert first[0][0].job_id == first[1][0].job_id != first[2][0].job_id
    assert [created for _, created in first] == [True, False, True]
    again = await jobs.create([job(key="k1")], 0)
    assert again[0][0].job_id == first[0][0].job_id and again[0][1] is False
    submitted = await state.list_events(0, EventFilter(types=frozenset({common_pb2.EVENT_TYPE_JOB_SUBMITTED})), 10_000)
    assert len(submitted) == 202  # one event per created job, none for duplicates


async def test_state_table_and_events(stores) -> None:
    jobs, state = stores
    await claim_until(state, 7)
    ((created, _),) = await jobs.create([job()], 0)
    job_id = created.job_id
    ok = await jobs.transition([Transition(job_id, 1, S, from_state=P, node_id="n1")], 7)
    assert ok[0].applied and ok[0].job.state == S and ok[0].job.node_id == "n1"
    illegal = await jobs.transition([Transition(job_id, 1, P)], 7)
    assert illegal == [] or not illegal[0].applied
    wrong_from = await jobs.transition([Transition(job_id, 1, R, from_state=P)], 7)
    assert not wrong_from[0].applied and "SCHEDULED, not PENDING" in wrong_from[0].reason
    await jobs.transition([Transition(job_id, 1, R)], 7)
    done = await jobs.transition([Transition(job_id, 1, OK, result_json='{"a": 1}', cpu_seconds=12.5)], 7)
    assert done[0].job.state == OK and done[0].job.result_json == '{"a": 1}'
    assert [a.cpu_seconds for a in done[0].job.attempts] == [12.5]  # the attempt's measured CPU time
    after = await jobs.transition([Transition(job_id, 1, F)], 7)
    assert not after[0].applied and "illegal transition SUCCEEDED -> FAILED" in after[0].reason
    types = [e.event.type for e in await state.list_events(0, EventFilter(subject=job_id), 100)]
    assert types == [
        common_pb2.EVENT_TYPE_JOB_SUBMITTED,
        common_pb2.EVENT_TYPE_JOB_SCHEDULED,
        common_pb2.EVENT_TYPE_JOB_STARTED,
        common_pb2.EVENT_TYPE_JOB_SUCCEEDED,
    ]


async def test_starting_and_the_end_of_a_short_job_in_one_call_record_both_in_order(stores) -> None:
    """JobService sends a delayed STARTING together with the agent's report when the report
    came first: one transaction, the job's attempt started and finished, JOB_STARTED then
    JOB_SUCCEEDED."""
    jobs, state = stores
    await claim_until(state, 3)
    ((created, _),) = await jobs.create([job()], 0)
    job_id = created.job_id
    await jobs.transition([Transition(job_id, 1, S, from_state=P, node_id="n1")], 3)
    both = await jobs.transition(
        [
            Transition(job_id, 1, JobState.STARTING, from_state=S, reported_by="n1"),
            Transition(job_id, 1, OK, node_id="n1", reported_by="n1", cpu_seconds=0.5),
        ],
        0,
    )
    assert [o.applied for o in both] == [True, True] and both[1].job.state == OK
    (attempt,) = both[1].job.attempts
    assert attempt.started_at is not None and attempt.finished_at is not None and attempt.cpu_seconds == 0.5
    if jobs._db.dialect == "sqlite":  # the attempt's times in SQLAlchemy's format, as the job's (not sqlite3's)
        stored = await jobs._db.read(
            lambda c: c.execute(
                text("SELECT a.started_at, a.finished_at, j.created_at FROM job_attempts a JOIN jobs j USING (job_id)")
            ).one()
        )
        assert {len(value) for value in stored} == {len(stored.created_at)} and "+" not in stored.started_at, stored
    types = [e.event.type for e in await state.list_events(0, EventFilter(subject=job_id), 100)]
    assert types[2:] == [common_pb2.EVENT_TYPE_JOB_STARTED, common_pb2.EVENT_TYPE_JOB_SUCCEEDED]


async def test_lost_job_retries_as_a_new_attempt_and_late_results_change_nothing(stores) -> None:
    jobs, state = stores
    await claim_until(state, 3)
    ((created, _),) = await jobs.create([job()], 0)
    job_id = created.job_id
    await jobs.transition([Transition(job_id, 1, S, node_id="n1"), Transition(job_id, 1, R)], 3)
    later = datetime.now(UTC) + timedelta(seconds=30)
    lost = await jobs.transition([Transition(job_id, 1, L, error="node n1 left", retry=True, not_before=later)], 3)
    retried = lost[0].job
    assert retried.state == P and retried.attempt == 2 and retried.node_id == ""
    assert [(a.attempt, a.state) for a in retried.attempts] == [(1, L), (2, P)]
    ready_now = await jobs.query(JobQuery(states=frozenset({P}), ready_before=datetime.now(UTC), oldest_first=True), 10)
    assert job_id not in [j.job_id for j in ready_now]  # backoff respected

    late = await jobs.transition([Transition(job_id, 1, OK, result_json='{"late": true}', cpu_seconds=3.0)], 3)
    assert not late[0].applied and "superseded" in late[0].reason
    current = await jobs.get(job_id)
    assert current.state == P and current.result_json == "" and current.attempts[0].state == OK
    assert current.attempts[0].cpu_seconds == 3.0  # recorded on the superseded attempt only
    await jobs.transition([Transition(job_id, 1, OK)], 3)  # a report without a measurement keeps it
    assert (await jobs.get(job_id)).attempts[0].cpu_seconds == 3.0


async def test_stale_epoch_changes_nothing(stores) -> None:
    jobs, state = stores
    await claim_until(state, 10)
    ((created, _),) = await jobs.create([job()], 0)
    with pytest.raises(StaleEpoch):
        await jobs.transition([Transition(created.job_id, 1, S, node_id="n1")], 9)
    with pytest.raises(StaleEpoch):
        await jobs.create([job()], 9)
    assert (await jobs.get(created.job_id)).state == P
    assert len(await jobs.query(JobQuery(), 100)) == 1


async def test_queries_filter_and_page(stores) -> None:
    jobs, _ = stores
    created = [j for j, _ in await jobs.create([job("sleep") for _ in range(5)] + [job("echo") for _ in range(3)], 0)]
    await jobs.transition([Transition(created[0].job_id, 1, S, node_id="n9")], 0)
    assert [j.kind for j in await jobs.query(JobQuery(kind="echo"), 10)] == ["echo"] * 3
    assert [j.job_id for j in await jobs.query(JobQuery(node_id="n9"), 10)] == [created[0].job_id]
    page1 = await jobs.query(JobQuery(), 3)
    page2 = await jobs.query(JobQuery(), 3, page1[-1].job_id)
    page3 = await jobs.query(JobQuery(), 3, page2[-1].job_id)
    assert [j.job_id for j in page1 + page2 + page3] == sorted((j.job_id for j in created), reverse=True)
    counts = {(kind, state): n for kind, state, n in await jobs.counts()}
    assert counts == {("sleep", P): 4, ("sleep", S): 1, ("echo", P): 3}


async def test_old_terminal_jobs_move_to_history(stores) -> None:
    jobs, _ = stores
    created = [j for j, _ in await jobs.create([job() for _ in range(3)], 0)]
    done, running = created[0].job_id, created[1].job_id
    await jobs.transition([Transition(done, 1, JobState.CANCELLED)], 0)
    await jobs.transition([Transition(running, 1, S, node_id="n1")], 0)
    assert await jobs.archive(datetime.now(UTC) - timedelta(hours=1), 0, lambda j: j.job_id.encode()) == 0
    moved = await jobs.archive(datetime.now(UTC) + timedelta(seconds=1), 0, lambda j: j.job_id.encode())
    assert moved == 1
    assert await jobs.get(done) is None and await jobs.archived(done) == done.encode()
    assert (await jobs.get(running)).state == S and await jobs.archived(running) is None
    # History is kept its window, then deleted (a job still live is not touched).
    assert await jobs.delete_history(datetime.now(UTC) - timedelta(days=30), 0) == 0
    assert await jobs.archived(done) == done.encode()
    assert await jobs.delete_history(datetime.now(UTC) + timedelta(seconds=1), 0) == 1
    assert await jobs.archived(done) is None and (await jobs.get(running)).state == S


async def test_startup_check_reports_stale_jobs_and_unknown_nodes_once(stores, database_url: str) -> None:
    from sqlalchemy import update as sql_update

    from ringrift_state.adapters.sql_registry import SqlRegistry
    from ringrift_state.adapters.startup_check import check_loaded_state
    from ringrift_state.adapters.tables import jobs as jobs_table

    jobs, state = stores
    db = Database(database_url)
    try:
        await SqlRegistry(db).record_nodes([common_pb2.NodeInfo(node_id="known")], [], 0)
        created = [j for j, _ in await jobs.create([job(), job(), job()], 0)]
        await jobs.transition([Transition(created[0].job_id, 1, S, node_id="known")], 0)
        await jobs.transition([Transition(created[1].job_id, 1, S, node_id="ghost")], 0)
        await db.write(
            lambda connection: connection.execute(
                sql_update(jobs_table)
                .where(jobs_table.c.job_id == created[0].job_id)
                .values(updated_at=datetime.now(UTC) - timedelta(days=2))
            )
        )
        assert await check_loaded_state(db) == 2
        await check_loaded_state(db)  # a second start adds no duplicate events
        warnings = await state.list_events(0, EventFilter(types=frozenset({common_pb2.EVENT_TYPE_STATE_WARNING})), 10)
        assert sorted((e.event.subject, e.event.attributes["check"]) for e in warnings) == sorted(
            [(created[0].job_id, "stale-job"), (created[1].job_id, "unknown-node")]
        )
        assert (await jobs.get(created[0].job_id)).state == S  # nothing changed
    finally:
        await db.dispose()
