"""StateRepository on SQLAlchemy 2 async (SQLite with WAL, or PostgreSQL).

Every write transaction starts with a write: an UPDATE of the single ``cluster`` row
that also checks the fencing epoch. That takes the write lock first (SQLite never has
to upgrade a read snapshot, which fails under WAL), serialises fenced writes with
AdvanceEpoch on both databases, and hands out event sequences in commit order.
"""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime

from sqlalchemy import Select, bindparam, delete, insert, select, text, update
from sqlalchemy.engine import Connection

from ringrift_runtime.db import Database
from ringrift_runtime.errors import Conflict, StaleEpoch, WrongState
from ringrift_state.adapters.tables import cluster, counters, events, state_values
from ringrift_state.domain.model import EpochRecord, EventFilter, NewEvent, StateValue, StoredEvent

EVENT_SEQUENCE = "event_sequence"
EVENTS_COMPACTED = "events_compacted"  # the highest sequence deleted by compaction
COMPACTION_BATCH = 5000  # events deleted per transaction (short locks on SQLite)


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _now() -> datetime:
    return datetime.now(UTC)


# The statements on every job's path, built once: SQLAlchemy then reuses their cache key
# and compiled form (a statement built per call costs its construction and its key).
_LOCK = (
    update(cluster)
    .where(cluster.c.id == 1)
    .values(epoch=cluster.c.epoch)
    .returning(cluster.c.epoch, cluster.c.leader_id, cluster.c.advanced_at)
)
_EVENT_HEAD = select(counters.c.value).where(counters.c.name == EVENT_SEQUENCE)
_TAKE_SEQUENCES = (
    update(counters)
    .where(counters.c.name == EVENT_SEQUENCE)
    .values(value=counters.c.value + bindparam("count"))
    .returning(counters.c.value)
)


def lock_and_fence(connection: Connection, epoch: int) -> EpochRecord:
    """Take the write lock; raise StaleEpoch when ``epoch`` (if non-zero) is below the maximum.
    Every write transaction starts with this."""
    row = connection.execute(_LOCK).one()
    if epoch and epoch < row.epoch:
        raise StaleEpoch(received=epoch, highest=row.epoch)
    if epoch > row.epoch:
        raise WrongState(f"epoch {epoch} was never issued (the highest is {row.epoch}): epochs come from ClaimEpoch")
    return EpochRecord(row.epoch, row.leader_id, _utc(row.advanced_at))


# PostgreSQL: every transaction that appends events notifies this channel (delivered at its
# commit, once however many events), so the other replicas' watches read at once instead
# of at their next poll (StateApp listens; state.event_poll_seconds stays the safety net).
EVENTS_CHANNEL = "ringrift_events"
_NOTIFY_EVENTS = text(f"NOTIFY {EVENTS_CHANNEL}")


def _notify_replicas(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(_NOTIFY_EVENTS)


def append_event_row(connection: Connection, event: NewEvent) -> StoredEvent:
    """Append within the caller's write transaction (after lock_and_fence)."""
    if event.idempotency_key:
        existing = connection.execute(select(events).where(events.c.idempotency_key == event.idempotency_key)).first()
        if existing is not None:
            return _stored(existing)
    sequence = (
        connection.execute(
            update(counters)
            .where(counters.c.name == EVENT_SEQUENCE)
            .values(value=counters.c.value + 1)
            .returning(counters.c.value)
        )
    ).scalar_one()
    stored = StoredEvent(sequence=sequence, time=_now(), event=event)
    _notify_replicas(connection)
    connection.execute(
        events.insert().values(
            sequence=sequence,
            type=event.type,
            time=stored.time,
            source=event.source,
            subject=event.subject,
            config_key=event.config_key,
            attributes=json.dumps(event.attributes, sort_keys=True),
            epoch=event.epoch,
            idempotency_key=event.idempotency_key or None,
        )
    )
    return stored


def append_event_rows(connection: Connection, new_events: list[NewEvent]) -> None:
    """Append many events (without idempotency keys) with one counter bump and one insert."""
    if not new_events:
        return
    last = connection.execute(_TAKE_SEQUENCES, {"count": len(new_events)}).scalar_one()
    now = _now()
    first = last - len(new_events) + 1
    _notify_replicas(connection)
    connection.execute(
        events.insert(),
        [
            dict(
                sequence=first + index,
                type=e.type,
                time=now,
                source=e.source,
                subject=e.subject,
                config_key=e.config_key,
                attributes=json.dumps(e.attributes, sort_keys=True),
                epoch=e.epoch,
                idempotency_key=None,
            )
            for index, e in enumerate(new_events)
        ],
    )


class SqlStateRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def close(self) -> None:
        await self._db.dispose()

    async def get_epoch(self) -> EpochRecord:
        def _read(connection: Connection) -> EpochRecord:
            row = connection.execute(select(cluster).where(cluster.c.id == 1)).one()
            return EpochRecord(row.epoch, row.leader_id, _utc(row.advanced_at))

        return await self._db.read(_read)

    async def advance_epoch(self, epoch: int, leader_id: str) -> EpochRecord:
        """Kept for compatibility: only the current epoch, by its own leader, is accepted
        (epochs are issued by claim_epoch)."""

        def _write(connection: Connection) -> EpochRecord:
            previous = lock_and_fence(connection, epoch)
            if leader_id != previous.leader_id:
                raise WrongState(f"epoch {epoch} is registered to leader {previous.leader_id!r}")
            return previous

        return await self._db.write(_write)

    async def claim_epoch(self, leader_key: str, leader_id: str) -> tuple[EpochRecord, EpochRecord]:
        """The epoch of ``leader_key``'s term: the next after the highest ever issued, or
        the one already issued to that key. (previous, current)."""

        def _write(connection: Connection) -> tuple[EpochRecord, EpochRecord]:
            previous = lock_and_fence(connection, 0)
            row = connection.execute(select(cluster.c.leader_key).where(cluster.c.id == 1)).one()
            if row.leader_key == leader_key and previous.epoch:
                return previous, previous
            now = _now()
            epoch = previous.epoch + 1
            connection.execute(
                update(cluster)
                .where(cluster.c.id == 1)
                .values(epoch=epoch, leader_id=leader_id, leader_key=leader_key, advanced_at=now)
            )
            return previous, EpochRecord(epoch, leader_id, now)

        return await self._db.write(_write)

    async def append_event(self, event: NewEvent) -> StoredEvent:
        def _write(connection: Connection) -> StoredEvent:
            lock_and_fence(connection, event.epoch)
            return append_event_row(connection, event)

        return await self._db.write(_write)

    async def list_events(self, after: int, event_filter: EventFilter, limit: int) -> list[StoredEvent]:
        query, params = _events_after(after, event_filter, limit)

        def _read(connection: Connection) -> list[StoredEvent]:
            return [_stored(row) for row in connection.execute(query, params).all()]

        return await self._db.read(_read)

    async def read_events(self, after: int, event_filter: EventFilter, limit: int) -> tuple[int, list[StoredEvent]]:
        query, params = _events_after(after, event_filter, limit)

        def _read(connection: Connection) -> tuple[int, list[StoredEvent]]:
            # The counter first: every event up to it was committed with it, so the
            # events read next (a later statement) include them all.
            head = connection.execute(_EVENT_HEAD).scalar_one()
            return head, [_stored(row) for row in connection.execute(query, params).all()]

        return await self._db.read(_read)

    async def events_floor(self) -> int:
        def _read(connection: Connection) -> int:
            floor = connection.execute(select(counters.c.value).where(counters.c.name == EVENTS_COMPACTED))
            return int(floor.scalar_one_or_none() or 0)

        return await self._db.read(_read)

    async def compact_events(self, before: datetime) -> tuple[int, int]:
        def _batch(connection: Connection) -> tuple[int, int, bool]:
            """One batch: (deleted, the floor, whether any was left to delete)."""
            oldest = (
                connection.execute(
                    select(events.c.sequence)
                    .where(events.c.time < before)
                    .order_by(events.c.sequence)
                    .limit(COMPACTION_BATCH)
                )
            ).all()
            current = connection.execute(
                select(counters.c.value).where(counters.c.name == EVENTS_COMPACTED)
            ).scalar_one_or_none()
            if not oldest:
                return 0, int(current or 0), False
            through = oldest[-1].sequence
            # Contiguous from the oldest: whatever sorts before the last old event goes too.
            result = connection.execute(delete(events).where(events.c.sequence <= through))
            floor = max(int(current or 0), through)
            if current is None:
                connection.execute(insert(counters).values(name=EVENTS_COMPACTED, value=floor))
            else:
                connection.execute(update(counters).where(counters.c.name == EVENTS_COMPACTED).values(value=floor))
            return result.rowcount or 0, floor, True

        deleted = 0
        while True:
            count, floor, more = await self._db.write(_batch)
            deleted += count
            if not more:
                return deleted, floor

    async def last_sequence(self) -> int:
        def _read(connection: Connection) -> int:
            return connection.execute(_EVENT_HEAD).scalar_one()

        return await self._db.read(_read)

    async def load_state(self, namespace: str, key: str) -> StateValue | None:
        def _read(connection: Connection) -> StateValue | None:
            row = (
                connection.execute(
                    select(state_values.c.value, state_values.c.version).where(
                        state_values.c.namespace == namespace, state_values.c.key == key
                    )
                )
            ).first()
            return StateValue(bytes(row.value), row.version) if row else None

        return await self._db.read(_read)

    async def persist_state(self, namespace: str, key: str, value: bytes, expected_version: int, epoch: int) -> int:
        def _write(connection: Connection) -> int:
            lock_and_fence(connection, epoch)
            where = (state_values.c.namespace == namespace, state_values.c.key == key)
            current = connection.execute(select(state_values.c.version).where(*where)).scalar_one_or_none()
            if (current or 0) != expected_version:
                raise Conflict(
                    f"state {namespace}/{key} is at version {current or 0}, not {expected_version}; "
                    "load it again and retry"
                )
            if current is None:
                connection.execute(
                    state_values.insert().values(
                        namespace=namespace, key=key, value=value, version=1, updated_at=_now()
                    )
                )
                return 1
            connection.execute(
                update(state_values).where(*where).values(value=value, version=current + 1, updated_at=_now())
            )
            return current + 1

        return await self._db.write(_write)


def _events_after(after: int, event_filter: EventFilter, limit: int) -> tuple[Select, dict]:
    """The events after ``after`` that match ``event_filter``, oldest first, at most
    ``limit``: a statement (one per combination of filters, built once) and its values."""
    shape = (bool(event_filter.types), bool(event_filter.config_key), bool(event_filter.subject))
    params = {"after": after, "limit": limit}
    if event_filter.types:
        params["types"] = sorted(event_filter.types)
    if event_filter.config_key:
        params["config_key"] = event_filter.config_key
    if event_filter.subject:
        params["subject"] = event_filter.subject
    return _events_query(*shape), params


@functools.cache
def _events_query(types: bool, config_key: bool, subject: bool) -> Select:
    query = select(events).where(events.c.sequence > bindparam("after"))
    if types:
        query = query.where(events.c.type.in_(bindparam("types", expanding=True)))
    if config_key:
        query = query.where(events.c.config_key == bindparam("config_key"))
    if subject:
        query = query.where(events.c.subject == bindparam("subject"))
    return query.order_by(events.c.sequence).limit(bindparam("limit"))


def _stored(row) -> StoredEvent:
    return StoredEvent(
        sequence=row.sequence,
        time=_utc(row.time),
        event=NewEvent(
            type=row.type,
            source=row.source,
            subject=row.subject,
            config_key=row.config_key,
            attributes=json.loads(row.attributes),
            epoch=row.epoch,
            idempotency_key=row.idempotency_key or "",
        ),
    )
