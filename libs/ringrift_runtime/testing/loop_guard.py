"""Measures how long each event-loop callback blocked its loop, as opposed to how long
it took on the wall clock: the time the loop's thread spent waiting on the run queue
(preempted by other processes on a busy machine) is not blocking, so it is taken out.

Linux reports, per thread, the nanoseconds spent on a run queue waiting for a CPU
(/proc/self/task/<tid>/schedstat, second field). Where that file is missing the guard
falls back to wall time."""

from __future__ import annotations

import asyncio.events
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

_local = threading.local()


def _run_queue_wait() -> float:
    """Seconds this thread has waited on a run queue so far (0.0 where unknown)."""
    fd = getattr(_local, "fd", None)
    if fd is None:
        try:
            fd = os.open(f"/proc/self/task/{threading.get_native_id()}/schedstat", os.O_RDONLY)
        except OSError:
            fd = -1
        _local.fd = fd
    if fd < 0:
        return 0.0
    try:
        return int(os.pread(fd, 64, 0).split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


@dataclass
class Blocked:
    """Callbacks that blocked their loop for longer than ``limit`` seconds."""

    limit: float
    found: list[str] = field(default_factory=list)


@contextmanager
def guard_loop(limit: float) -> Iterator[Blocked]:
    """While active, every callback an asyncio loop runs is timed; one that blocked its
    loop (wall time minus run-queue wait) longer than ``limit`` is recorded."""
    blocked = Blocked(limit)
    original = asyncio.events.Handle._run

    def timed(handle: asyncio.events.Handle) -> None:
        wall, waited = time.perf_counter(), _run_queue_wait()
        try:
            original(handle)
        finally:
            own = (time.perf_counter() - wall) - (_run_queue_wait() - waited)
            if own > limit:
                blocked.found.append(f"{handle!r:.300} blocked its loop for {own:.3f} s")

    asyncio.events.Handle._run = timed  # type: ignore[method-assign]
    try:
        yield blocked
    finally:
        asyncio.events.Handle._run = original  # type: ignore[method-assign]
