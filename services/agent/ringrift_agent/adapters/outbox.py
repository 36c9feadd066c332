"""Durable outbox of job status events: every event is written to disk (fsynced) before
anything else happens, then delivered to JobService in order until acknowledged. An
agent that cannot reach JobService keeps its events and delivers them later, also after
a restart. Events JobService refuses as malformed are moved to outbox/dead/."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

log = logging.getLogger("ringrift.agent.outbox")


class Rejected(Exception):
    """JobService refused the event for good (it will never accept it)."""


class Outbox:
    def __init__(
        self, directory: Path, send: Callable[[dict], Awaitable[None]], retry_max_seconds: float = 5.0
    ) -> None:
        self._dir = directory
        self._dead = directory / "dead"
        self._send = send
        self._retry_max = retry_max_seconds
        self._dir.mkdir(parents=True, exist_ok=True)
        self._dead.mkdir(exist_ok=True)
        self._counter = self._dir / "sequence"
        self._sequence = int(self._counter.read_text()) if self._counter.exists() else 0
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self.delivered = 0

    def pending(self) -> list[Path]:
        return sorted(self._dir.glob("*.json"))

    def _write(self, sequence: int, event: dict) -> None:
        path = self._dir / f"{sequence:012d}.json"
        tmp = path.with_suffix(".tmp")
        with tmp.open("w") as handle:
            json.dump({**event, "agent_sequence": sequence}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
        counter_tmp = self._counter.with_suffix(".tmp")
        counter_tmp.write_text(str(sequence))
        counter_tmp.replace(self._counter)

    async def put(self, event: dict) -> None:
        async with self._lock:
            self._sequence += 1
            await asyncio.to_thread(self._write, self._sequence, event)
        self._wake.set()

    async def run(self) -> None:
        """Deliver forever, oldest first."""
        delay = 0.1
        while True:
            self._wake.clear()
            for path in self.pending():
                event = json.loads(await asyncio.to_thread(path.read_text))
                try:
                    await self._send(event)
                except Rejected as exc:
                    log.error("JobService refused event %s for good (%s); kept in %s", path.name, exc, self._dead)
                    await asyncio.to_thread(path.replace, self._dead / path.name)
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
