"""google.protobuf.Timestamp <-> Python time, in one place. Times are UTC; an unset
Timestamp (zero) stands for "no time"."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp


def now() -> datetime:
    return datetime.now(UTC)


def to_timestamp(value: datetime | float | None) -> Timestamp | None:
    """A Timestamp from a datetime (naive ones are taken as UTC) or unix seconds; None
    (or 0 seconds) gives None, i.e. the field stays unset."""
    if value is None or (not isinstance(value, datetime) and not value):
        return None
    stamp = Timestamp()
    if isinstance(value, datetime):
        stamp.FromDatetime(value if value.tzinfo else value.replace(tzinfo=UTC))
    else:
        seconds = int(value)  # whole seconds apart: value * 1e9 would lose nanoseconds to float rounding
        stamp.FromNanoseconds(seconds * 1_000_000_000 + round((value - seconds) * 1e9))
    return stamp


def from_timestamp(stamp: Timestamp) -> datetime | None:
    """The UTC datetime of a Timestamp, None when it is unset."""
    return stamp.ToDatetime(tzinfo=UTC) if stamp.seconds or stamp.nanos else None
