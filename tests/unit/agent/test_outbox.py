"""The agent's outbox on a real directory: a file that is not an event (torn, corrupted,
missing fields) is moved to dead/ and reported once, and delivery goes on after it; an
unreadable sequence counter never makes a sequence be reused."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import grpc
import pytest

from ringrift_agent.adapters.jobs_client import JobEventSender
from ringrift_agent.adapters.outbox import Outbox, Rejected
from ringrift_runtime.skipped import SkippedRecords


def _event(job_id: str) -> dict:
    return {"job_id": job_id, "attempt": 1, "node_id": "n1", "state": 4, "exit_code": 0, "error": "", "result_json": ""}


async def _deliver_until(outbox: Outbox, count: int) -> None:
    task = asyncio.create_task(outbox.run())
    try:
        async with asyncio.timeout(10):
            while outbox.delivered < count or outbox.pending():
                await asyncio.sleep(0.01)
    finally:
        task.cancel()


async def test_a_file_that_is_not_an_event_goes_to_dead_and_delivery_goes_on(tmp_path: Path) -> None:
    sent: list[str] = []
    reported: list[tuple[str, str]] = []

    async def send(event: dict) -> None:
        if "job_id" not in event:
            raise Rejected("not a job event: no 'job_id'")
        sent.append(event["job_id"])

    async def report(kind: str, name: str, reason: str) -> None:
        reported.append((kind, name))

    outbox = Outbox(tmp_path / "outbox", send, skipped=SkippedRecords("agent/n1", report))
    await outbox.put(_event("j1"))
    (tmp_path / "outbox" / "000000000002.json").write_bytes(b'{"job_id": "j2", "att')  # torn by a crash
    (tmp_path / "outbox" / "000000000003.json").write_bytes(b"\xff\xfe not utf-8")
    (tmp_path / "outbox" / "000000000004.json").write_text(json.dumps({"state": 4}))  # no job id
    (tmp_path / "outbox" / "000000000005.json").write_text("[1, 2]")
    (tmp_path / "outbox" / "sequence").write_text("5")
    outbox = Outbox(tmp_path / "outbox", send, skipped=SkippedRecords("agent/n1", report))
    await outbox.put(_event("j6"))
    await _deliver_until(outbox, 2)
    assert sent == ["j1", "j6"]  # in order, past the four bad files
    dead = sorted(p.name for p in (tmp_path / "outbox" / "dead").iterdir())
    assert dead == [f"00000000000{n}.json" for n in (2, 3, 4, 5)]
    assert reported == [("outbox_event", name) for name in dead]
    assert outbox.skipped.counts == {"outbox_event": 4}


async def test_an_unreadable_counter_continues_after_the_highest_event_file(tmp_path: Path) -> None:
    reported: list[tuple[str, str]] = []

    async def report(kind: str, name: str, reason: str) -> None:
        reported.append((kind, name))

    async def refuse(event: dict) -> None:
        raise ConnectionError("JobService unreachable")

    directory = tmp_path / "outbox"
    first = Outbox(directory, refuse)
    for job in ("j1", "j2", "j3"):
        await first.put(_event(job))
    (directory / "sequence").write_text("")  # truncated by a power cut
    second = Outbox(directory, refuse, skipped=SkippedRecords("agent/n1", report))
    await second.put(_event("j4"))
    assert [p.name for p in second.pending()][-1] == "000000000004.json"  # not 000000000001 again
    assert json.loads((directory / "000000000001.json").read_text())["job_id"] == "j1"  # nothing overwritten
    task = asyncio.create_task(second.run())
    await asyncio.sleep(0.05)
    task.cancel()
    assert reported == [("outbox_counter", "sequence")]


@pytest.mark.parametrize(
    "event",
    [{"attempt": 1}, {**_event("j1"), "agent_sequence": 1, "attempt": "one"}, {**_event("j1"), "agent_sequence": -1}],
    ids=["missing", "wrong-type", "out-of-range"],
)
async def test_the_sender_refuses_for_good_what_is_not_a_job_event(event: dict) -> None:
    """Not retried forever: Rejected moves it to dead/ (before any call is made)."""
    async with grpc.aio.insecure_channel("127.0.0.1:9") as channel:
        with pytest.raises(Rejected, match="not a job event"):
            await JobEventSender(channel)(event)
