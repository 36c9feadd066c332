"""What the StateService use cases need from storage."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from ringrift_state.domain.model import EpochRecord, EventFilter, NewEvent, StateValue, StoredEvent


class StateRepository(Protocol):
    """Durable storage. Every method that takes ``epoch`` enforces fencing in the same
    transaction as its write: an epoch below the persisted maximum raises StaleEpoch,
    a higher one raises the maximum; 0 means "not on behalf of a leader"."""

    async def get_epoch(self) -> EpochRecord: ...

    async def advance_epoch(self, epoch: int, leader_id: str) -> EpochRecord:
        """Persist ``epoch`` for ``leader_id``; return the record before the change."""

    async def claim_epoch(self, leader_key: str, leader_id: str) -> tuple[EpochRecord, EpochRecord]:
        """The epoch of ``leader_key``'s term (the next after the highest ever issued, or
        the one already issued to that key); (previous, current)."""

    async def append_event(self, event: NewEvent) -> StoredEvent:
        """Append with the next sequence (no gaps; commit order = sequence order).
        A repeated idempotency key returns the first stored event."""

    async def list_events(self, after: int, event_filter: EventFilter, limit: int) -> list[StoredEvent]: ...

    async def last_sequence(self) -> int: ...

    async def read_events(self, after: int, event_filter: EventFilter, limit: int) -> tuple[int, list[StoredEvent]]:
        """(the last sequence, the events after ``after``) in one transaction: every
        event up to that sequence is among what it read or before ``after``."""
        ...

    async def events_floor(self) -> int:
        """The highest sequence compacted away (0: none); events after it are kept."""
        ...

    async def compact_events(self, before: datetime) -> tuple[int, int]:
        """Delete the events recorded before ``before`` (a contiguous run from the oldest);
        (how many went, the new floor)."""
        ...

    async def load_state(self, namespace: str, key: str) -> StateValue | None: ...

    async def persist_state(self, namespace: str, key: str, value: bytes, expected_version: int, epoch: int) -> int:
        """Create (expected_version 0) or replace the value at ``expected_version``;
        raise Conflict when the stored version differs. Returns the new version."""

    async def close(self) -> None: ...


class LeaderKeys(Protocol):
    """The election in etcd."""

    async def lowest(self) -> tuple[str, str] | None:
        """(key, candidate) of the lowest key under the leader prefix: the leader."""
        ...
