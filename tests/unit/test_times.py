"""Timestamp conversions used by every service."""

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from ringrift_runtime.grpc.times import from_timestamp, to_timestamp


def test_round_trips_and_unset_values() -> None:
    aware = datetime(2026, 11, 28, 12, 0, 0, 500000, tzinfo=UTC)
    assert from_timestamp(to_timestamp(aware)) == aware
    assert from_timestamp(to_timestamp(aware.replace(tzinfo=None))) == aware  # naive means UTC
    assert to_timestamp(1_800_000_000.25).ToNanoseconds() == 1_800_000_000_250_000_000
    assert to_timestamp(None) is None and to_timestamp(0.0) is None
    assert from_timestamp(Timestamp()) is None
