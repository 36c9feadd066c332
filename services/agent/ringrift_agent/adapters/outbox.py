"""Durable outbox of job status events: every event is written to disk (fsynced) before
anything else happens, then delivered to JobService in order until acknowledged. An
agent that cannot reach JobService keeps its events and delivers them later, also after
a restart. Events JobService refuses as malformed, and files that cannot be read as an
event (a torn or corrupted file), are moved to outbox/dead/ and reported as skipped
records (RECORD_SKIPPED, ringrift_records_skipped_total): delivery goes on after them."""

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
        self.delivered = 0

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
        """Deliver forever, oldest first."""
        delay = 0.1
        if self._bad_counter:
            await self.skipped.skip("outbox_counter", self._counter.name, self._bad_counter)
        while True:
            self._wake.clear()
            for path in self.pending():
                try:
                    event = await asyncio.to_thread(_read_event, path)
                    await self._send(event)
                except (Malformed, Rejected) as exc:
                    refused = "refused by JobService" if isinstance(exc, Rejected) else "not an event"
                    log.error("outbox event %s %s (%s); kept in %s", path.name, refused, exc, self._dead)
                    await asyncio.to_thread(replace_durably, path, self._dead / path.name)
                    await self.skipped.skip("outbox_event", path.name, f"{refused}: {exc}")
                    continue
                except Exception as exc:
                    log.warning("cannot deliver job events yet (%s); %d pending", exc, len(self.pending()))
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self._retry_max)
                    break
                await asyncio.to_thread(path.unlink)
                self.delivered += 1
                delay = 0.1
            else:
                await self._wake.wait()
