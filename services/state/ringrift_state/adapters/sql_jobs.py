"""Jobs and attempts on SQLAlchemy. Every write runs in one transaction that starts with
the fencing write lock (sql.lock_and_fence) and appends its JOB_* events in the same
transaction, so the event log and the job table never disagree."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import bindparam, func, or_, select, update
from sqlalchemy.engine import Connection

from ringrift.common.v1 import common_pb2
from ringrift_runtime.db import Database
from ringrift_runtime.ids import ulid
from ringrift_state.adapters.sql import _now, _utc, append_event_rows, lock_and_fence
from ringrift_state.adapters.tables import job_attempts, jobs, jobs_history
from ringrift_state.domain.jobs import (
    ON_NODE,
    TERMINAL,
    AttemptRecord,
    AttemptWrite,
    CurrentJob,
    JobQuery,
    JobRecord,
    JobState,
    NewJob,
    Outcome,
    Transition,
    decide,
)
from ringrift_state.domain.model import NewEvent

EVENT_FOR_STATE = {
    JobState.SCHEDULED: common_pb2.EVENT_TYPE_JOB_SCHEDULED,
    JobState.STARTING: common_pb2.EVENT_TYPE_JOB_STARTED,
    JobState.RUNNING: common_pb2.EVENT_TYPE_JOB_STARTED,
    JobState.SUCCEEDED: common_pb2.EVENT_TYPE_JOB_SUCCEEDED,
    JobState.FAILED: common_pb2.EVENT_TYPE_JOB_FAILED,
    JobState.CANCELLED: common_pb2.EVENT_TYPE_JOB_CANCELLED,
    JobState.LOST: common_pb2.EVENT_TYPE_JOB_LOST,
}
SOURCE = "state"


def _attempt(row) -> AttemptRecord:
    return AttemptRecord(
        row.attempt,
        row.node_id,
        JobState(row.state),
        _utc(row.created_at),
        _utc(row.started_at),
        _utc(row.finished_at),
        row.exit_code,
        row.error,
        row.cpu_seconds,
    )


def _job(row, attempts: tuple[AttemptRecord, ...] = ()) -> JobRecord:
    return JobRecord(
        job_id=row.job_id,
        kind=row.kind,
        config_key=row.config_key,
        spec=bytes(row.spec),
        state=JobState(row.state),
        attempt=row.attempt,
        node_id=row.node_id,
        idempotency_key=row.idempotency_key or "",
        created_at=_utc(row.created_at),
        updated_at=_utc(row.updated_at),
        not_before=_utc(row.not_before),
        error=row.error,
        permanent=row.permanent,
        result_json=row.result_json,
        priority=row.priority,
        max_attempts=row.max_attempts,
        attempts=attempts,
    )


class SqlJobRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    def _load(self, connection: Connection, job_ids: list[str]) -> dict[str, JobRecord]:
        if not job_ids:
            return {}
        rows = connection.execute(_JOBS_BY_ID, {"ids": job_ids}).all()
        attempt_rows = connection.execute(_ATTEMPTS_BY_JOB, {"ids": job_ids}).all()
        by_job: dict[str, list[AttemptRecord]] = {}
        for row in attempt_rows:
            by_job.setdefault(row.job_id, []).append(_attempt(row))
        return {row.job_id: _job(row, tuple(by_job.get(row.job_id, ()))) for row in rows}

    async def create(self, new_jobs: list[NewJob], epoch: int) -> list[tuple[JobRecord, bool]]:
        """Create PENDING jobs in one transaction; a reused idempotency key returns the
        job created first (in the same batch or earlier)."""

        def _write(connection: Connection) -> list[tuple[JobRecord, bool]]:
            lock_and_fence(connection, epoch)
            keys = [j.idempotency_key for j in new_jobs if j.idempotency_key]
            existing: dict[str, str] = {}
            if keys:
                rows = connection.execute(
                    select(jobs.c.idempotency_key, jobs.c.job_id).where(jobs.c.idempotency_key.in_(keys))
                )
                existing = {row.idempotency_key: row.job_id for row in rows}
            now = _now()
            ids: list[str] = []
            fresh: list[bool] = []
            job_rows, attempt_rows = [], []
            for new in new_jobs:
                if new.idempotency_key and new.idempotency_key in existing:
                    ids.append(existing[new.idempotency_key])
                    fresh.append(False)
                    continue
                fresh.append(True)
                job_id = ulid()
                if new.idempotency_key:
                    existing[new.idempotency_key] = job_id
                ids.append(job_id)
                job_rows.append(
                    dict(
                        job_id=job_id,
                        kind=new.kind,
                        config_key=new.config_key,
                        spec=new.spec,
                        state=int(JobState.PENDING),
                        attempt=1,
                        node_id="",
                        idempotency_key=new.idempotency_key or None,
                        created_at=now,
                        updated_at=now,
                        not_before=None,
                        error="",
                        permanent=False,
                        result_json="",
                        priority=new.priority,
                        max_attempts=new.max_attempts,
                        needs_gpu=new.needs_gpu,
                    )
                )
                attempt_rows.append(
                    dict(
                        job_id=job_id,
                        attempt=1,
                        node_id="",
                        state=int(JobState.PENDING),
                        created_at=now,
                        started_at=None,
                        finished_at=None,
                        exit_code=0,
                        error="",
                        cpu_seconds=0.0,
                    )
                )
            if job_rows:
                connection.execute(jobs.insert(), job_rows)
                connection.execute(job_attempts.insert(), attempt_rows)
                append_event_rows(
                    connection,
                    [
                        NewEvent(
                            type=common_pb2.EVENT_TYPE_JOB_SUBMITTED,
                            source=SOURCE,
                            subject=row["job_id"],
                            config_key=row["config_key"],
                            attributes={"kind": row["kind"]},
                            epoch=epoch,
                        )
                        for row in job_rows
                    ],
                )
            loaded = self._load(connection, list(dict.fromkeys(ids)))
            return [(loaded[job_id], created) for job_id, created in zip(ids, fresh, strict=True)]

        return await self._db.write(_write)

    async def get(self, job_id: str) -> JobRecord | None:
        def _read(connection: Connection) -> JobRecord | None:
            return (self._load(connection, [job_id])).get(job_id)

        return await self._db.read(_read)

    async def archived(self, job_id: str) -> bytes | None:
        """The serialized Job of an archived job (see archive)."""

        def _read(connection: Connection) -> bytes | None:
            row = connection.execute(select(jobs_history.c.job).where(jobs_history.c.job_id == job_id)).first()
            return bytes(row.job) if row else None

        return await self._db.read(_read)

    async def _in_batches(self, epoch: int, pick, act: Callable[[Connection, list[str]], None]) -> int:
        """Run ``act(connection, ids)`` on the ids ``pick`` (a limited select of job ids)
        finds, one fenced transaction per batch, until it finds none; how many in all."""

        def _batch(connection: Connection) -> int:
            lock_and_fence(connection, epoch)
            ids = [row.job_id for row in connection.execute(pick)]
            if ids:
                act(connection, ids)
            return len(ids)

        done = 0
        while count := await self._db.write(_batch):
            done += count
        return done

    async def archive(self, older_than: datetime, epoch: int, encode, batch: int = 1000) -> int:
        """Move terminal jobs last changed before ``older_than`` to history, one batch per
        transaction; ``encode(JobRecord) -> bytes`` serializes each with its attempts."""
        terminal = [int(s) for s in TERMINAL]
        pick = select(jobs.c.job_id).where(jobs.c.state.in_(terminal), jobs.c.updated_at < older_than).limit(batch)

        def move(connection: Connection, ids: list[str]) -> None:
            loaded = self._load(connection, ids)
            now = _now()
            connection.execute(
                jobs_history.insert(),
                [
                    dict(
                        job_id=j.job_id,
                        kind=j.kind,
                        config_key=j.config_key,
                        state=int(j.state),
                        updated_at=j.updated_at,
                        archived_at=now,
                        job=encode(j),
                    )
                    for j in loaded.values()
                ],
            )
            connection.execute(job_attempts.delete().where(job_attempts.c.job_id.in_(ids)))
            connection.execute(jobs.delete().where(jobs.c.job_id.in_(ids)))

        return await self._in_batches(epoch, pick, move)

    async def delete_history(self, archived_before: datetime, epoch: int, batch: int = 1000) -> int:
        """Delete jobs archived before ``archived_before`` from history, one batch per
        transaction (retention: history is kept a window, then goes)."""
        pick = select(jobs_history.c.job_id).where(jobs_history.c.archived_at < archived_before).limit(batch)

        def delete(connection: Connection, ids: list[str]) -> None:
            connection.execute(jobs_history.delete().where(jobs_history.c.job_id.in_(ids)))

        return await self._in_batches(epoch, pick, delete)

    async def query(self, query: JobQuery, limit: int, after_job_id: str = "") -> list[JobRecord]:
        statement = select(jobs.c.job_id)
        if query.states:
            statement = statement.where(jobs.c.state.in_(sorted(int(s) for s in query.states)))
        if query.kind:
            statement = statement.where(jobs.c.kind == query.kind)
        if query.config_key:
            statement = statement.where(jobs.c.config_key == query.config_key)
        if query.node_id:
            statement = statement.where(jobs.c.node_id == query.node_id)
        if query.ready_before is not None:
            statement = statement.where(or_(jobs.c.not_before.is_(None), jobs.c.not_before <= query.ready_before))
        if query.oldest_first:
            if after_job_id:
                statement = statement.where(jobs.c.job_id > after_job_id)
            statement = statement.order_by(jobs.c.priority.desc(), jobs.c.job_id)
        else:
            if after_job_id:
                statement = statement.where(jobs.c.job_id < after_job_id)
            statement = statement.order_by(jobs.c.job_id.desc())

        def _read(connection: Connection) -> list[JobRecord]:
            ids = [row.job_id for row in connection.execute(statement.limit(limit))]
            loaded = self._load(connection, ids)
            return [loaded[job_id] for job_id in ids]

        return await self._db.read(_read)

    async def counts(self) -> list[tuple[str, JobState, int]]:
        def _read(connection: Connection) -> list[tuple[str, JobState, int]]:
            rows = connection.execute(
                select(jobs.c.kind, jobs.c.state, func.count()).group_by(jobs.c.kind, jobs.c.state)
            )
            return [(row[0], JobState(row[1]), row[2]) for row in rows]

        return await self._db.read(_read)

    async def on_nodes(self) -> list[tuple[str, int, int]]:
        """(node id, jobs, GPU jobs) of every node holding a job placed on it. Grouped by
        all three columns of the (state, node_id, needs_gpu) index, which answers it alone
        in index order (grouped by node alone, SQLite may scan another index whole): about
        1 ms for 2,000 placed jobs beside a 100,000-job backlog."""
        statement = (
            select(jobs.c.node_id, jobs.c.needs_gpu, func.count())
            .where(jobs.c.state.in_(sorted(int(s) for s in ON_NODE)))
            .group_by(jobs.c.state, jobs.c.node_id, jobs.c.needs_gpu)
        )
        counts: dict[str, list[int]] = {}

        def _read(connection: Connection) -> list[tuple[str, int, int]]:
            for node_id, needs_gpu, count in connection.execute(statement):
                totals = counts.setdefault(node_id, [0, 0])
                totals[0] += count
                totals[1] += count if needs_gpu else 0
            return [(node_id, total, gpu) for node_id, (total, gpu) in sorted(counts.items())]

        return await self._db.read(_read)

    async def transition(self, transitions: list[Transition], epoch: int, with_jobs: bool = True) -> list[Outcome]:
        """Apply a batch in one transaction with set-based statements: one select, one
        executemany per table, one counter bump and one insert for all events."""

        def _write(connection: Connection) -> list[Outcome]:
            lock_and_fence(connection, epoch)
            ids = list(dict.fromkeys(t.job_id for t in transitions))
            rows = {r.job_id: dict(r._mapping) for r in connection.execute(_JOBS_BY_ID, {"ids": ids})}
            before = {job_id: dict(row) for job_id, row in rows.items()}
            now = _now()
            batch = _Batch(now, epoch)
            outcomes = [self._decide(rows, t, batch) for t in transitions]
            if batch.attempts:
                connection.execute(_ATTEMPT_UPDATE, batch.attempts)
            if batch.new_attempts:
                connection.execute(job_attempts.insert(), batch.new_attempts)
            changed = [row for job_id, row in rows.items() if row != before[job_id]]
            if changed:
                connection.execute(_JOB_UPDATE, [{f"b_{k}": v for k, v in row.items()} for row in changed])
            append_event_rows(connection, batch.events)
            loaded = self._load(connection, ids) if with_jobs else {}
            return [Outcome(o.job_id, o.applied, o.reason, loaded.get(o.job_id)) for o in outcomes]

        return await self._db.write(_write)

    @staticmethod
    def _decide(rows: dict[str, dict], t: Transition, batch: _Batch) -> Outcome:
        """One transition decided by the domain's table (``decide``), its writes recorded in
        ``batch``; ``rows`` holds the jobs as they are after the transitions decided so far."""
        row = rows.get(t.job_id)
        current = None
        if row is not None:
            current = CurrentJob(
                row["job_id"], JobState(row["state"]), row["attempt"], row["node_id"], row["kind"], row["config_key"]
            )
        decision = decide(current, t)
        if decision.attempt is not None:
            batch.attempt(t.job_id, decision.attempt)
        if not decision.applied or row is None:
            return Outcome(t.job_id, False, decision.reason, None)
        row.update({k: int(v) if isinstance(v, JobState) else v for k, v in decision.job_changes.items()})
        row["updated_at"] = batch.now
        if decision.event_state is not None:
            batch.event(EVENT_FOR_STATE[decision.event_state], t.job_id, row["config_key"], decision.event_attributes)
        if decision.next_attempt:
            batch.new_attempts.append(
                dict(
                    job_id=t.job_id,
                    attempt=decision.next_attempt,
                    node_id="",
                    state=int(JobState.PENDING),
                    created_at=batch.now,
                    started_at=None,
                    finished_at=None,
                    exit_code=0,
                    error="",
                    cpu_seconds=0.0,
                )
            )
            attributes = {**decision.event_attributes, "next_attempt": str(decision.next_attempt)}
            batch.event(common_pb2.EVENT_TYPE_JOB_RETRIED, t.job_id, row["config_key"], attributes)
        return Outcome(t.job_id, True, "", None)


class _Batch:
    """The writes of one TransitionJobs call."""

    def __init__(self, now: datetime, epoch: int) -> None:
        self.now = now
        self.epoch = epoch
        self.attempts: list[dict] = []
        self.new_attempts: list[dict] = []
        self.events: list[NewEvent] = []

    def attempt(self, job_id: str, write: AttemptWrite) -> None:
        self.attempts.append(
            dict(
                b_job_id=job_id,
                b_attempt=write.attempt,
                b_state=int(write.state),
                b_node_id=write.node_id,
                b_exit_code=write.exit_code,
                b_error=write.error,
                b_cpu_seconds=write.cpu_seconds or None,
                b_started=self.now if write.started else None,
                b_finished=self.now if write.finished else None,
            )
        )

    def event(self, event_type: int, job_id: str, config_key: str, attributes: dict[str, str]) -> None:
        self.events.append(
            NewEvent(
                type=event_type,
                source=SOURCE,
                subject=job_id,
                config_key=config_key,
                attributes=attributes,
                epoch=self.epoch,
            )
        )


_JOBS_BY_ID = select(jobs).where(jobs.c.job_id.in_(bindparam("ids", expanding=True)))
_ATTEMPTS_BY_JOB = (
    select(job_attempts)
    .where(job_attempts.c.job_id.in_(bindparam("ids", expanding=True)))
    .order_by(job_attempts.c.attempt)
)
_ATTEMPT_UPDATE = (
    update(job_attempts)
    .where(job_attempts.c.job_id == bindparam("b_job_id"), job_attempts.c.attempt == bindparam("b_attempt"))
    .values(
        state=bindparam("b_state"),
        # Typed as their columns: a value inside coalesce() is not, and a datetime would
        # reach SQLite through sqlite3's own adapter (another text format; deprecated
        # since Python 3.12) instead of SQLAlchemy's.
        node_id=func.coalesce(bindparam("b_node_id", type_=job_attempts.c.node_id.type), job_attempts.c.node_id),
        exit_code=bindparam("b_exit_code"),
        error=bindparam("b_error"),
        cpu_seconds=func.coalesce(
            bindparam("b_cpu_seconds", type_=job_attempts.c.cpu_seconds.type), job_attempts.c.cpu_seconds
        ),
        started_at=func.coalesce(
            bindparam("b_started", type_=job_attempts.c.started_at.type), job_attempts.c.started_at
        ),
        finished_at=func.coalesce(
            bindparam("b_finished", type_=job_attempts.c.finished_at.type), job_attempts.c.finished_at
        ),
    )
)
_JOB_UPDATE = (
    update(jobs)
    .where(jobs.c.job_id == bindparam("b_job_id"))
    .values({column.name: bindparam(f"b_{column.name}") for column in jobs.columns if column.name != "job_id"})
)
