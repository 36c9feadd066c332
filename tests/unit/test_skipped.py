"""Skipped malformed records: counted and reported once per record, names and reasons
bounded, and a failing report never fails the loop that skipped the record."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from ringrift_contracts.skipped import skipped_event
from ringrift_runtime.skipped import SkippedRecords


async def test_each_record_is_counted_and_reported_once() -> None:
    reported: list[tuple[str, str, str]] = []

    async def report(kind: str, name: str, reason: str) -> None:
        reported.append((kind, name, reason))

    records = SkippedRecords("gateway", report)
    assert await records.skip("job_result", "job-1", "games is not a number")
    assert not await records.skip("job_result", "job-1", "games is not a number")  # read again next round
    assert await records.skip("job_result", "job-2", "games is not a number")
    assert await records.skip("cursor", "pipeline/games-cursor", "not JSON")
    assert [name for _, name, _ in reported] == ["job-1", "job-2", "pipeline/games-cursor"]
    registry = CollectorRegistry()
    registry.register(records.collector())
    value = registry.get_sample_value
    assert value("ringrift_records_skipped_total", {"component": "gateway", "kind": "job_result"}) == 2
    assert value("ringrift_records_skipped_total", {"component": "gateway", "kind": "cursor"}) == 1


async def test_a_huge_name_or_reason_is_bounded_and_a_failing_report_is_only_logged(caplog) -> None:
    async def broken(kind: str, name: str, reason: str) -> None:
        raise ConnectionError("StateService unavailable")

    records = SkippedRecords("nodes", broken)
    assert await records.skip("reservation", "n" * 10_000, "r" * 10_000)
    assert records.counts == {"reservation": 1}
    assert "could not report" in caplog.text and "n" * 121 not in caplog.text and "r" * 201 not in caplog.text


async def test_the_memory_of_reported_records_is_bounded() -> None:
    records = SkippedRecords("agent", remember=3)
    for name in ("a", "b", "c", "d"):
        await records.skip("outbox_file", name, "not JSON")
    assert await records.skip("outbox_file", "a", "not JSON")  # forgotten: counted again, not kept forever
    assert records.counts["outbox_file"] == 5


def test_the_event_names_the_record_and_is_idempotent_per_record() -> None:
    first = skipped_event("training", "run_event", "event 7", "not a training run")
    again = skipped_event("training", "run_event", "event 7", "another wording")
    other = skipped_event("training", "run_event", "event 8", "not a training run")
    assert first.subject == "event 7" and first.attributes["kind"] == "run_event"
    assert first.idempotency_key == again.idempotency_key != other.idempotency_key
