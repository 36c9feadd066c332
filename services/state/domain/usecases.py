"""StateService use cases: fencing, the event log with live watches, versioned state."""

from __future__ import annotations

import asyncio
import logging
from typing import AsyncIterator

from ringrift_state.domain.model import EpochRecord, EventFilter, NewEvent, StateValue, StoredEvent
from ringrift_state.domain.ports import StateRepository

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
    def __init__(self, repository: StateRepository, poll_seconds: float, batch_size: int) -> None:
        self._repository = repository
        self._poll_seconds = poll_seconds
        self._batch_size = batch_size
        self._notifier = EventNotifier()

    async def get_epoch(self) -> EpochRecord:
        return await self._repository.get_epoch()

    async def advance_epoch(self, epoch: int, leader_id: str) -> tuple[EpochRecord, EpochRecord]:
        """Persist a new leader's epoch; returns (previous, current)."""
        previous = await self._repository.advance_epoch(epoch, leader_id)
        if previous.epoch != epoch:
            log.info("epoch advanced from %d to %d by %s", previous.epoch, epoch, leader_id)
        return previous, await self._repository.get_epoch()

    async def publish(self, event: NewEvent) -> StoredEvent:
        stored = await self._repository.append_event(event)
        self._notifier.notify()
        return stored

    def notify(self) -> None:
        """Wake watchers after another write appended events (jobs)."""
        self._notifier.notify()

    async def list_events(self, after: int, event_filter: EventFilter, limit: int) -> list[StoredEvent]:
        return await self._repository.list_events(after, event_filter, min(limit or self._batch_size, self._batch_size))

    async def watch(self, after: int, event_filter: EventFilter) -> AsyncIterator[StoredEvent]:
        """Every matching event with a sequence above ``after``, in order, then live ones.
        Resuming with the last sequence received gives no gap and no duplicate."""
        last = after
        while True:
            batch = await self._repository.list_events(last, event_filter, self._batch_size)
            for stored in batch:
                yield stored
                last = stored.sequence
            if len(batch) < self._batch_size:
                await self._notifier.wait(self._poll_seconds)

    async def last_sequence(self) -> int:
        return await self._repository.last_sequence()

    async def load_state(self, namespace: str, key: str) -> StateValue | None:
        return await self._repository.load_state(namespace, key)

    async def persist_state(self, namespace: str, key: str, value: bytes, expected_version: int, epoch: int) -> int:
        return await self._repository.persist_state(namespace, key, value, expected_version, epoch)
