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

from ringrift_runtime.durable import replace_durably, write_atomic
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
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._events: dict[str, dict] = {}  # file name -> event read (files never change once written)
        self.delivered = 0
        self.coalesced = 0  # RUNNING events a later event of their attempt made unnecessary

    def _read_counter(self) -> int:
        """The last sequence handed out; when its file is unreadable, the highest any
        event file carries (a sequence is never reused)."""
        try:
            return int(self._counter.read_text()) if self._counter.exists() else 0
        except ValueError as exc:
            self._bad_counter = f"not a sequence number ({str(exc)[:60]}); went on after the highest event file"
            names = [p.stem for p in (*self._dir.glob("*.json"), *self._dead.glob("*.json"))]
            return max((int(n) for n in names if n.isdigit()), default=0)

    def pending(self) -> list[Path]:
        return sorted(self._dir.glob("*.json"))

    def _write(self, sequence: int, event: dict) -> None:
        # The counter first: after a crash between the two, a sequence is skipped, never
        # reused. Both live in this directory: the event's directory fsync covers both renames.
        write_atomic(self._counter, str(sequence), sync_dir=False)
        write_atomic(self._dir / f"{sequence:012d}.json", json.dumps({**event, "agent_sequence": sequence}))

    async def put(self, event: dict) -> None:
        async with self._lock:
            self._sequence += 1
            await asyncio.to_thread(self._write, self._sequence, event)
        self._wake.set()

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
        return bool(heads), not all(results)

    async def _coalesce(self, queue: list[Path]) -> Path | None:
        """The job's next event to send: a RUNNING event followed by a later event of the
        same attempt is dropped (the later one says more)."""
        while len(queue) > 1:
            head = self._events[queue[0].name]
            if head.get("state") != RUNNING:
                break
            if not any(self._events[p.name].get("attempt") == head.get("attempt") for p in queue[1:]):
                break
            await asyncio.to_thread(_unlink, queue[0])
            self._forget(queue.pop(0).name)
            self.coalesced += 1
        return queue[0] if queue else None

    async def _deliver(self, path: Path) -> bool:
        """Send one event; False when it could not be delivered yet."""
        try:
            await self._send(self._events[path.name])
        except Rejected as exc:
            await self._bury(path, "refused by JobService", exc)
            return True
        except Exception as exc:
            log.warning("cannot deliver job events yet (%s); %d pending", exc, len(self._events))
            return False
        await asyncio.to_thread(_unlink, path)
        self._forget(path.name)
        self.delivered += 1
        return True

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


def _unlink(path: Path) -> None:
    path.unlink(missing_ok=True)
