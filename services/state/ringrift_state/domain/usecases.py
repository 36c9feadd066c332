"""StateService use cases: fencing, the event log with live watches, versioned state."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator
from datetime import datetime

from ringrift_runtime.aio import cancel_and_wait
from ringrift_runtime.errors import DependencyUnavailable, OutOfRange, PermissionDenied, WrongState
from ringrift_state.domain.model import EpochRecord, EventFilter, NewEvent, StateValue, StoredEvent
from ringrift_state.domain.ports import LeaderKeys, StateRepository

log = logging.getLogger("ringrift.state")

TAIL_EVENTS = 4096  # the newest events held for live watches


class EventNotifier:
    """Wakes watchers when this replica appends; they also poll for other replicas' writes."""

    def __init__(self) -> None:
        self._changed = asyncio.Event()

    def notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def next_change(self) -> asyncio.Event:
        """Set by the next notify: taken before a read, so a notify during the read is not missed."""
        return self._changed

    async def wait(self, timeout: float, change: asyncio.Event | None = None) -> None:
        try:
            await asyncio.wait_for((change or self._changed).wait(), timeout)
        except TimeoutError:
            pass


def matches(event_filter: EventFilter, stored: StoredEvent) -> bool:
    """What the repository's filtered read selects, for events already in memory."""
    event = stored.event
    return (
        (not event_filter.types or event.type in event_filter.types)
        and (not event_filter.config_key or event.config_key == event_filter.config_key)
        and (not event_filter.subject or event.subject == event_filter.subject)
    )


class EventTail:
    """The newest events, read once for every live watch: an append (or the poll for
    another replica's) costs one read of the repository, not one per watch. At most
    TAIL_EVENTS are held; a watch further behind reads the repository itself."""

    def __init__(self, repository: StateRepository, notifier: EventNotifier, poll_seconds: float, batch: int) -> None:
        self._repository = repository
        self._notifier = notifier
        self._poll_seconds = poll_seconds
        self._batch = batch
        self._events: deque[StoredEvent] = deque(maxlen=TAIL_EVENTS)
        self.head = -1  # every event up to here was read (-1: not read yet)
        self._failed = False  # the last read failed: watches read the repository (and see why)
        self._moved = EventNotifier()  # wakes the watches after each read
        self._task: asyncio.Task[None] | None = None

    def after(self, last: int) -> list[StoredEvent] | None:
        """The events above ``last`` up to head, oldest first; None when the tail cannot
        say (not read yet, a failed read, ``last`` older than what it holds or ahead of it)."""
        if self.head < 0 or self._failed or last > self.head:
            return None
        found: list[StoredEvent] = []
        for stored in reversed(self._events):
            if stored.sequence <= last:
                break
            found.append(stored)
        else:
            oldest = found[-1].sequence if found else self.head + 1
            if oldest != last + 1:
                return None  # there are events between last and what is held
        found.reverse()
        return found

    async def moved(self) -> None:
        """Until the tail reads again (at the latest after the poll period)."""
        if self._task is None:
            self._task = asyncio.create_task(self._follow(), name="event-tail")
        await self._moved.wait(self._poll_seconds)

    async def close(self) -> None:
        """Stop following (a read in flight is cancelled and returns its connection)."""
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def _follow(self) -> None:
        while True:
            change = self._notifier.next_change()
            try:
                await self._read()
                self._failed = False
            except Exception as exc:  # the watches read the repository and report it
                if not self._failed:
                    log.warning("the event tail cannot read events (%s); watches read them themselves", exc)
                self._failed = True
            self._moved.notify()
            await self._notifier.wait(self._poll_seconds, change)

    async def _read(self) -> None:
        if self.head < 0:  # the first read: hold from here on
            self._events.clear()
            self.head = await self._repository.last_sequence()
            return
        # One transaction for a wake: the head (every event up to it is visible) and
        # the events after what is held.
        head, found = await self._repository.read_events(self.head, EventFilter(), self._batch)
        if head < self.head:
            self._events.clear()  # a database that went back: hold from here on
            self.head = head
            return
        while self.head < head:
            batch = [e for e in found if e.sequence <= head]
            if not batch or batch[0].sequence != self.head + 1:
                self._events.clear()  # compacted meanwhile: hold from head on
                self.head = head
                return
            self._events.extend(batch)
            self.head = batch[-1].sequence
            if self.head < head:  # more than a batch behind
                found = await self._repository.list_events(self.head, EventFilter(), self._batch)


class StateUseCases:
    def __init__(
        self, repository: StateRepository, poll_seconds: float, batch_size: int, leaders: LeaderKeys | None = None
    ) -> None:
        self._repository = repository
        self._leaders = leaders
        self._batch_size = batch_size
        self._notifier = EventNotifier()
        self._tail = EventTail(repository, self._notifier, poll_seconds, batch_size)
        self._floor = 0  # the highest compacted sequence (load_floor at start, compact after)

    async def close(self) -> None:
        """Stop the event tail's reads (before the repository closes)."""
        await self._tail.close()

    async def get_epoch(self) -> EpochRecord:
        return await self._repository.get_epoch()

    async def advance_epoch(self, epoch: int, leader_id: str) -> tuple[EpochRecord, EpochRecord]:
        """Persist a new leader's epoch; returns (previous, current)."""
        previous = await self._repository.advance_epoch(epoch, leader_id)
        if previous.epoch != epoch:
            log.info("epoch advanced from %d to %d by %s", previous.epoch, epoch, leader_id)
        return previous, await self._repository.get_epoch()

    async def claim_epoch(self, leader_key: str, candidate: str | None) -> tuple[EpochRecord, EpochRecord]:
        """Issue the epoch of a new term, only to the leader etcd shows: its key is the lowest
        under the leader prefix and (with identities) names ``candidate``."""
        if self._leaders is None:
            raise DependencyUnavailable("this StateService cannot see the election (no etcd)")
        lowest = await self._leaders.lowest()
        if lowest is None or lowest[0] != leader_key:
            raise WrongState(f"{leader_key[:64]} is not the lowest key under the leader prefix: it does not lead")
        if candidate is not None and lowest[1] != candidate:
            raise PermissionDenied(f"the leader key names {lowest[1][:64]!r}, not {candidate[:64]!r}")
        previous, current = await self._repository.claim_epoch(leader_key, lowest[1])
        if previous.epoch != current.epoch:
            log.info("epoch %d issued to %s (key %s)", current.epoch, current.leader_id, leader_key)
        return previous, current

    async def publish(self, event: NewEvent) -> StoredEvent:
        stored = await self._repository.append_event(event)
        self._notifier.notify()
        return stored

    def notify(self) -> None:
        """Wake watchers after another write appended events (jobs)."""
        self._notifier.notify()

    async def list_events(self, after: int, event_filter: EventFilter, limit: int) -> list[StoredEvent]:
        self._check_kept(after)
        return await self._repository.list_events(after, event_filter, min(limit or self._batch_size, self._batch_size))

    async def event_head(self) -> int:
        """The sequence of the last event appended (0: none)."""
        return await self._repository.last_sequence()

    def _check_kept(self, after: int) -> None:
        """Reading after a compacted sequence would miss events: OUT_OF_RANGE, naming the
        oldest one kept. 0 means "from the oldest kept"."""
        if 0 < after < self._floor:
            raise OutOfRange(
                f"events up to sequence {self._floor} were deleted past their retention; "
                f"the oldest available is {self._floor + 1}: read after {self._floor} (or from 0)",
                self._floor + 1,
            )

    async def load_floor(self) -> None:
        self._floor = await self._repository.events_floor()

    async def compact(self, before: datetime) -> int:
        """Delete the events recorded before ``before``; how many went."""
        deleted, self._floor = await self._repository.compact_events(before)
        if deleted:
            log.info("compacted %d events (the oldest kept is now %d)", deleted, self._floor + 1)
        return deleted

    async def watch(self, after: int, event_filter: EventFilter) -> AsyncIterator[StoredEvent]:
        """Every matching event with a sequence above ``after``, in order, then live ones.
        Resuming with the last sequence received gives no gap and no duplicate; a watch
        that falls behind a compaction ends OUT_OF_RANGE rather than skip events."""
        last = after
        while True:
            self._check_kept(last)
            held = self._tail.after(last)
            if held is not None:  # live: from the events read once for every watch
                head = self._tail.head
                for stored in held:
                    if matches(event_filter, stored):
                        yield stored
                last = max(last, head)
                if last >= self._tail.head:  # nothing newer read meanwhile
                    await self._tail.moved()
                continue
            head, batch = await self._repository.read_events(last, event_filter, self._batch_size)
            for stored in batch:
                yield stored
                last = stored.sequence
            if len(batch) < self._batch_size:
                # Everything that matched up to head was sent: a filtered watch that saw
                # nothing for a long time has still read past the events compaction deletes.
                last = max(last, head)
                if self._tail.after(last) is None:  # ahead of the tail, or it cannot say
                    await self._tail.moved()

    async def last_sequence(self) -> int:
        return await self._repository.last_sequence()

    async def load_state(self, namespace: str, key: str) -> StateValue | None:
        return await self._repository.load_state(namespace, key)

    async def persist_state(self, namespace: str, key: str, value: bytes, expected_version: int, epoch: int) -> int:
        return await self._repository.persist_state(namespace, key, value, expected_version, epoch)
