"""StateService domain: the cluster epoch, the event log and versioned state values."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class EpochRecord:
    """The highest leader epoch persisted, and who persisted it."""

    epoch: int
    leader_id: str
    advanced_at: datetime | None


@dataclass(frozen=True)
class NewEvent:
    """An event to append; the log assigns sequence and time."""

    type: int
    source: str
    subject: str = ""
    config_key: str = ""
    attributes: dict[str, str] = field(default_factory=dict)
    epoch: int = 0
    idempotency_key: str = ""


@dataclass(frozen=True)
class StoredEvent:
    sequence: int
    time: datetime
    event: NewEvent


@dataclass(frozen=True)
class EventFilter:
    """Matches everything when empty."""

    types: frozenset[int] = frozenset()
    config_key: str = ""
    subject: str = ""


@dataclass(frozen=True)
class StateValue:
    value: bytes
    version: int
