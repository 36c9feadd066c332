"""Measures how long each event-loop callback blocked its loop, as opposed to how long
it took on the wall clock. What is not the callback's doing is taken out:

- the time the loop's thread waited on a run queue for a CPU (other processes of a busy
  machine preempting it). Linux reports it per thread in
  /proc/self/task/<tid>/schedstat (second field; the first is the thread's CPU time);
- when the thread never gave up its CPU by itself during the callback (no voluntary
  context switch: it did not sleep, wait for I/O, a lock or a subprocess), only its CPU
  time counts: the rest of the wall time was taken from it, by the run queue or by the
  hypervisor (a virtual machine's vCPU stolen by its host is neither CPU time nor a run-
  queue wait inside the guest; CI runs on such machines, and callbacks that do next to
  nothing, a task's wake-up in a test of fakes among them, once measured 0.2-0.3 s there);
- garbage collection: a full collection of a test process's heap is not a blocking call
  of the code under test.

A blocking call still counts in full: a sleep, a synchronous socket, database or
subprocess wait gives up the CPU voluntarily, and a scan or a synchronous computation is
CPU time. Where schedstat is missing the guard falls back to wall time."""

from __future__ import annotations

import asyncio.events
import gc
import os
import resource
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

_local = threading.local()


def _schedstat() -> tuple[float, float]:
    """(CPU seconds, run-queue wait seconds) of this thread so far; (0.0, 0.0) where unknown."""
    fd = getattr(_local, "fd", None)
    if fd is None:
        try:
            fd = os.open(f"/proc/self/task/{threading.get_native_id()}/schedstat", os.O_RDONLY)
        except OSError:
            fd = -1
        _local.fd = fd
    if fd < 0:
        return 0.0, 0.0
    try:
        fields = os.pread(fd, 64, 0).split()
        return int(fields[0]) / 1e9, int(fields[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0, 0.0


def _voluntary_switches() -> int:
    return resource.getrusage(resource.RUSAGE_THREAD).ru_nvcsw


@dataclass
class Blocked:
    """Callbacks that blocked their loop for longer than ``limit`` seconds."""

    limit: float
    found: list[str] = field(default_factory=list)


class _GcClock:
    """Seconds spent in garbage collection so far (any thread: a collection holds the GIL)."""

    def __init__(self) -> None:
        self.total = 0.0
        self._started = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.total += time.perf_counter() - self._started


def blocked_seconds(wall: float, cpu: float, waited: float, voluntary: int, collecting: float) -> float:
    """How long a callback blocked its loop, from its wall time, its thread's CPU time and
    run-queue wait, its voluntary context switches and the garbage collection during it."""
    own = wall - waited if voluntary else min(cpu, wall - waited)
    return own - collecting


@contextmanager
def guard_loop(limit: float) -> Iterator[Blocked]:
    """While active, every callback an asyncio loop runs is timed; one that blocked its
    loop (see ``blocked_seconds``) longer than ``limit`` is recorded."""
    blocked = Blocked(limit)
    original = asyncio.events.Handle._run
    collecting = _GcClock()

    def timed(handle: asyncio.events.Handle) -> None:
        wall, (cpu, waited), switches, gc_before = (
            time.perf_counter(),
            _schedstat(),
            _voluntary_switches(),
            collecting.total,
        )
        try:
            original(handle)
        finally:
            elapsed = time.perf_counter() - wall
            if elapsed > limit:  # the rest only for the few slow ones
                cpu_after, waited_after = _schedstat()
                if cpu_after == 0.0:  # no schedstat: wall time is all there is
                    cpu_after, cpu = elapsed, 0.0
                own = blocked_seconds(
                    elapsed,
                    cpu_after - cpu,
                    waited_after - waited,
                    _voluntary_switches() - switches,
                    collecting.total - gc_before,
                )
                if own > limit:
                    blocked.found.append(f"{handle!r:.300} blocked its loop for {own:.3f} s")

    asyncio.events.Handle._run = timed  # type: ignore[method-assign]
    gc.callbacks.append(collecting)
    try:
        yield blocked
    finally:
        asyncio.events.Handle._run = original  # type: ignore[method-assign]
        gc.callbacks.remove(collecting)
