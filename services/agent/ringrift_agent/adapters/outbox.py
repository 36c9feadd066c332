"""Durable outbox of job status events: every event is written to disk (fsynced) before
anything else happens, then delivered to JobService until acknowledged, in order for each
job and concurrently across jobs (one event of a job in flight at a time). An agent that
cannot reach JobService keeps its events and delivers them later, also after a restart.

A RUNNING event still waiting when a later event of the same attempt is written (its end,
while JobService was out of reach) is dropped: the later one says more, and STARTING ->
SUCCEEDED is a legal transition. Events JobService refuses as malformed, and
files that cannot be read as an event (a torn or corrupted file), are moved to
outbox/dead/ and reported as skipped records (RECORD_SKIPPED,
ringrift_records_skipped_total): delivery goes on after them."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from ringrift_runtime.durable import fsync_dir, replace_durably, write_atomic
from ringrift_runtime.skipped import SkippedRecords

log = logging.getLogger("ringrift.agent.outbox")


class Rejected(Exception):
    """JobService refused the event for good (it will never accept it)."""


class Malformed(Exception):
    """An outbox file that is not an event (torn, corrupted or edited by hand)."""


def _read_event(path: Path) -> dict:
    try:
        event = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError) as exc:
        raise Malformed(f"not JSON: {str(exc)[:80]}") from None
    if not isinstance(event, dict):
        raise Malformed("not a JSON object")
    return event


RUNNING = 4  # JobState.RUNNING on the wire
MAX_IN_FLIGHT = 64  # events sent at once (each of another job)
COUNTER_BLOCK = 1024  # sequences taken per write of the counter
DELIVERED, BURIED, FAILED = "delivered", "buried", "failed"


class Outbox:
    def __init__(
        self,
        directory: Path,
        send: Callable[[dict], Awaitable[None]],
        retry_max_seconds: float = 5.0,
        skipped: SkippedRecords | None = None,
    ) -> None:
        self._dir = directory
        self._dead = directory / "dead"
        self._send = send
        self._retry_max = retry_max_seconds
        self.skipped = skipped or SkippedRecords("agent")
        self._dir.mkdir(parents=True, exist_ok=True)
        self._dead.mkdir(exist_ok=True)
        self._counter = self._dir / "sequence"
        self._bad_counter = ""
        self._sequence = self._read_counter()
        self._reserved = self._sequence  # the counter on disk: sequences up to it are taken
        self._queued: list[tuple[dict, asyncio.Future[None]]] = []
        self._writer: asyncio.Task | None = None
        self._wake = asyncio.Event()
        self._events: dict[str, dict] = {}  # file name -> event read (files never change once written)
        self.delivered = 0
        self.coalesced = 0  # RUNNING events a later event of their attempt made unnecessary
        self.writes = 0  # trips to disk (each wrote one or more events)

    def _read_counter(self) -> int:
        """The last sequence that may have been handed out (the end of the last block
        taken); when its file is unreadable, the highest any event file carries (a
        sequence is never reused)."""
        try:
            return int(self._counter.read_text()) if self._counter.exists() else 0
        except ValueError as exc:
            self._bad_counter = f"not a sequence number ({str(exc)[:60]}); went on after the highest event file"
            names = [p.stem for p in (*self._dir.glob("*.json"), *self._dead.glob("*.json"))]
            return max((int(n) for n in names if n.isdigit()), default=0)

    def pending(self) -> list[Path]:
        return sorted(self._dir.glob("*.json"))

    def _write(self, first: int, events: list[dict]) -> None:
        """Write ``events`` as ``first``, ``first + 1``, ...: each file fsynced, then one
        fsync of the directory makes all their names durable (and the counter's)."""
        last = first + len(events) - 1
        if last > self._reserved:
            # The counter first, a block of sequences at a time: after a crash the next
            # start continues after the block, so a sequence is skipped, never reused.
            reserved = last + COUNTER_BLOCK - 1
            write_atomic(self._counter, str(reserved), sync_dir=False)
            self._reserved = reserved
        for sequence, event in enumerate(events, first):
            body = json.dumps({**event, "agent_sequence": sequence})
            write_atomic(self._dir / f"{sequence:012d}.json", body, sync_dir=False)
        fsync_dir(self._dir)

    async def put(self, event: dict) -> None:
        """Return once ``event`` is on disk. Events put while others are being written are
        written together (one thread hop and one directory fsync for all of them)."""
        written: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queued.append((event, written))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_queued(), name="outbox-writer")
        await written
        self._wake.set()

    async def _write_queued(self) -> None:
        while self._queued:
            batch, self._queued = self._queued, []
            first = self._sequence + 1
            self._sequence += len(batch)  # taken even if the write fails: never reused
            try:
                await asyncio.to_thread(self._write, first, [event for event, _ in batch])
            except asyncio.CancelledError:
                for _, written in batch:
                    written.cancel()
                raise
            except Exception as exc:  # a full disk: each waiting put raises it
                for _, written in batch:
                    if not written.done():
                        written.set_exception(exc)
                continue
            for _, written in batch:
                if not written.done():
                    written.set_result(None)
            self.writes += 1

    async def run(self) -> None:
        """Deliver forever."""
        delay = 0.1
        if self._bad_counter:
            await self.skipped.skip("outbox_counter", self._counter.name, self._bad_counter)
        while True:
            self._wake.clear()
            sent, failed = await self._round()
            if failed:
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._retry_max)
                continue
            delay = 0.1
            if not sent:
                await self._wake.wait()

    async def _round(self) -> tuple[bool, bool]:
        """Send the first undelivered event of every job at once; (whether any was sent,
        whether a send failed)."""
        paths = self.pending()
        unread = [p for p in paths if p.name not in self._events]
        if unread:
            for path, event in zip(unread, await asyncio.to_thread(_read_all, unread), strict=True):
                if isinstance(event, Malformed):
                    await self._bury(path, "not an event", event)
                else:
                    self._events[path.name] = event
        by_job: dict[str, list[Path]] = {}
        for path in paths:
            event = self._events.get(path.name)
            if event is not None:
                by_job.setdefault(str(event.get("job_id")), []).append(path)
        heads: list[Path] = []
        for queue in by_job.values():
            head = await self._coalesce(queue)
            if head is not None and len(heads) < MAX_IN_FLIGHT:
                heads.append(head)
        results = await asyncio.gather(*(self._deliver(path) for path in heads))
        delivered = [path for path, result in zip(heads, results, strict=True) if result == DELIVERED]
        if delivered:
            await asyncio.to_thread(_unlink_all, delivered)  # a repeat after a crash is ignored
            for path in delivered:
                self._forget(path.name)
            self.delivered += len(delivered)
        return bool(heads), FAILED in results

    async def _coalesce(self, queue: list[Path]) -> Path | None:
        """The job's next event to send: a RUNNING event followed by a later event of the
        same attempt is dropped (the later one says more); their files go in one thread hop."""
        dropped: list[Path] = []
        while len(queue) > 1:
            head = self._events[queue[0].name]
            if head.get("state") != RUNNING:
                break
            if not any(self._events[p.name].get("attempt") == head.get("attempt") for p in queue[1:]):
                break
            dropped.append(queue.pop(0))
        if dropped:
            await asyncio.to_thread(_unlink_all, dropped)
            for path in dropped:
                self._forget(path.name)
            self.coalesced += len(dropped)
        return queue[0] if queue else None

    async def _deliver(self, path: Path) -> str:
        """Send one event: DELIVERED (its file still to remove), BURIED or FAILED (not
        delivered yet)."""
        try:
            await self._send(self._events[path.name])
        except Rejected as exc:
            await self._bury(path, "refused by JobService", exc)
            return BURIED
        except Exception as exc:
            log.warning("cannot deliver job events yet (%s); %d pending", exc, len(self._events))
            return FAILED
        return DELIVERED

    async def _bury(self, path: Path, refused: str, exc: Exception) -> None:
        log.error("outbox event %s %s (%s); kept in %s", path.name, refused, exc, self._dead)
        await asyncio.to_thread(replace_durably, path, self._dead / path.name)
        self._forget(path.name)
        await self.skipped.skip("outbox_event", path.name, f"{refused}: {exc}")

    def _forget(self, name: str) -> None:
        self._events.pop(name, None)


def _read_all(paths: list[Path]) -> list[dict | Malformed]:
    events: list[dict | Malformed] = []
    for path in paths:
        try:
            events.append(_read_event(path))
        except Malformed as exc:
            events.append(exc)
    return events


def _unlink_all(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)
