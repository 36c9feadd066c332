"""StateService use cases: fencing, the event log with live watches, versioned state."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import datetime

from ringrift_runtime.errors import DependencyUnavailable, OutOfRange, PermissionDenied, WrongState
from ringrift_state.domain.model import EpochRecord, EventFilter, NewEvent, StateValue, StoredEvent
from ringrift_state.domain.ports import LeaderKeys, StateRepository

log = logging.getLogger("ringrift.state")


class EventNotifier:
    """Wakes watchers when this replica appends; they also poll for other replicas' writes."""

    def __init__(self) -> None:
        self._changed = asyncio.Event()

    def notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except TimeoutError:
            pass


class StateUseCases:
    def __init__(
        self, repository: StateRepository, poll_seconds: float, batch_size: int, leaders: LeaderKeys | None = None
    ) -> None:
        self._repository = repository
        self._leaders = leaders
        self._poll_seconds = poll_seconds
        self._batch_size = batch_size
        self._notifier = EventNotifier()
        self._floor = 0  # the highest compacted sequence (load_floor at start, compact after)

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
            head = await self._repository.last_sequence()  # every event up to here is visible now
            batch = await self._repository.list_events(last, event_filter, self._batch_size)
            for stored in batch:
                yield stored
                last = stored.sequence
            if len(batch) < self._batch_size:
                # Everything that matched up to head was sent: a filtered watch that saw
                # nothing for a long time has still read past the events compaction deletes.
                last = max(last, head)
                await self._notifier.wait(self._poll_seconds)

    async def last_sequence(self) -> int:
        return await self._repository.last_sequence()

    async def load_state(self, namespace: str, key: str) -> StateValue | None:
        return await self._repository.load_state(namespace, key)

    async def persist_state(self, namespace: str, key: str, value: bytes, expected_version: int, epoch: int) -> int:
        return await self._repository.persist_state(namespace, key, value, expected_version, epoch)
