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
    assert sorted(reported) == [("outbox_event", name) for name in dead]  # each once
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


RUNNING, SUCCEEDED = 4, 5


def _report(job_id: str, state: int, attempt: int = 1) -> dict:
    return {**_event(job_id), "state": state, "attempt": attempt}


async def test_a_running_event_is_dropped_when_a_later_event_of_its_attempt_waits_behind_it(tmp_path: Path) -> None:
    """JobService out of reach while a job ran and ended: its end is the one report."""

    async def refuse(event: dict) -> None:
        raise ConnectionError("JobService unreachable")

    first = Outbox(tmp_path / "outbox", refuse)
    await first.put(_report("j1", RUNNING))
    await first.put(_report("j2", RUNNING, attempt=1))
    await first.put(_report("j1", SUCCEEDED))
    await first.put(_report("j2", 6, attempt=1))  # j2's first attempt failed ...
    await first.put(_report("j2", RUNNING, attempt=2))  # ... and its second runs
    sent: list[tuple[str, int, int]] = []

    async def send(event: dict) -> None:
        sent.append((event["job_id"], event["attempt"], event["state"]))

    outbox = Outbox(tmp_path / "outbox", send)
    await _deliver_until(outbox, 3)
    assert sorted(sent) == [("j1", 1, SUCCEEDED), ("j2", 1, 6), ("j2", 2, RUNNING)]
    assert sent.index(("j2", 1, 6)) < sent.index(("j2", 2, RUNNING))  # a job's events in order
    assert outbox.coalesced == 2


async def test_one_event_of_a_job_at_a_time_and_other_jobs_do_not_wait_for_it(tmp_path: Path) -> None:
    release = asyncio.Event()
    started: list[tuple[str, int]] = []
    done: list[tuple[str, int]] = []

    async def send(event: dict) -> None:
        started.append((event["job_id"], event["state"]))
        if event["job_id"] == "slow":
            await release.wait()
        done.append((event["job_id"], event["state"]))

    outbox = Outbox(tmp_path / "outbox", send)
    await outbox.put(_report("slow", RUNNING))
    await outbox.put(_report("slow", 6, attempt=2))
    await outbox.put(_report("fast", SUCCEEDED))
    task = asyncio.create_task(outbox.run())
    try:
        async with asyncio.timeout(10):
            while ("fast", SUCCEEDED) not in done:
                await asyncio.sleep(0.01)
        assert started == [("slow", RUNNING), ("fast", SUCCEEDED)]  # slow's next waits for its first
        release.set()
        async with asyncio.timeout(10):
            while len(done) < 3:
                await asyncio.sleep(0.01)
        assert done[1:] == [("slow", RUNNING), ("slow", 6)]
    finally:
        task.cancel()


async def test_events_put_together_are_written_in_one_trip_and_a_restart_never_reuses_a_sequence(
    tmp_path: Path,
) -> None:
    async def refuse(event: dict) -> None:
        raise ConnectionError("JobService unreachable")

    directory = tmp_path / "outbox"
    first = Outbox(directory, refuse)
    await asyncio.gather(*(first.put(_event(f"j{n}")) for n in range(1, 51)))
    assert first.writes == 1  # fifty events, one trip to disk
    written = [json.loads(p.read_text()) for p in first.pending()]
    assert [(e["job_id"], e["agent_sequence"]) for e in written] == [(f"j{n}", n) for n in range(1, 51)]
    await first.put(_event("j51"))
    assert first.writes == 2

    # The counter is written once a block of sequences: a restart (or a crash) goes on
    # after the whole block, past every sequence the first outbox may have used.
    second = Outbox(directory, refuse)
    await second.put(_event("after"))
    names = [p.name for p in second.pending()]
    assert len(names) == 52 and names[:51] == [f"{n:012d}.json" for n in range(1, 52)]
    assert int(names[-1].removesuffix(".json")) > 51
    assert json.loads((directory / names[-1]).read_text())["job_id"] == "after"


async def test_a_failed_write_fails_every_put_waiting_for_it_and_takes_no_sequence_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ringrift_agent.adapters import outbox as module

    async def refuse(event: dict) -> None:
        raise ConnectionError("JobService unreachable")

    outbox = Outbox(tmp_path / "outbox", refuse)
    real = module.write_atomic

    def full(path: Path, data: str, **kwargs: object) -> None:
        if path.name != "sequence":
            raise OSError(28, "No space left on device")
        real(path, data, **kwargs)

    monkeypatch.setattr(module, "write_atomic", full)
    results = await asyncio.gather(*(outbox.put(_event(f"j{n}")) for n in range(3)), return_exceptions=True)
    assert [type(r) for r in results] == [OSError] * 3
    assert outbox.pending() == []
    monkeypatch.setattr(module, "write_atomic", real)
    await outbox.put(_event("later"))
    (only,) = outbox.pending()
    assert int(only.stem) == 4 and json.loads(only.read_text())["agent_sequence"] == 4


async def test_a_round_that_delivered_every_head_is_not_a_failure(tmp_path: Path) -> None:
    sent: list[str] = []

    async def send(event: dict) -> None:
        sent.append(event["job_id"])

    outbox = Outbox(tmp_path / "outbox", send)
    await asyncio.gather(*(outbox.put(_event(f"j{n}")) for n in range(100)))
    assert await outbox._round() == (True, False)  # 64 sent at once: go on, no backoff
    assert await outbox._round() == (True, False)
    assert await outbox._round() == (False, False)  # nothing left: wait for the next put
    assert sorted(sent) == sorted(f"j{n}" for n in range(100)) and outbox.pending() == []
    assert outbox.delivered == 100
