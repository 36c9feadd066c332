"""The slow-callback guard measures the loop's own blocking, not wall time: a blocking
call or a long computation is caught; a callback preempted by another process sharing
its CPU, or whose vCPU its host took, or that a garbage collection paused, is not."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import pytest

from ringrift_runtime.testing.loop_guard import blocked_seconds, guard_loop


def _spin(cpu_seconds: float) -> None:
    end = time.thread_time() + cpu_seconds
    while time.thread_time() < end:
        pass


@pytest.mark.allow_slow_callbacks
def test_a_blocking_call_is_caught() -> None:
    async def blocks() -> None:
        time.sleep(0.25)  # noqa: ASYNC251 - the blocking call the guard must catch

    with guard_loop(0.1) as blocked:
        asyncio.run(blocks())
    assert len(blocked.found) == 1 and "blocked its loop for 0.2" in blocked.found[0]


@pytest.mark.allow_slow_callbacks
def test_a_long_computation_is_caught() -> None:
    async def computes() -> None:
        _spin(0.25)

    with guard_loop(0.1) as blocked:
        asyncio.run(computes())
    assert len(blocked.found) == 1 and "blocked its loop for 0.2" in blocked.found[0]


def test_what_was_taken_from_the_thread_or_spent_collecting_garbage_is_not_blocking() -> None:
    # 0.3 s on the wall, 10 ms of CPU, no run-queue wait, no voluntary switch: the host
    # took the vCPU (steal) -- the callback's own part is its CPU time.
    assert blocked_seconds(0.3, 0.01, 0.0, 0, 0.0) == pytest.approx(0.01)
    # The same callback slept or waited (a voluntary switch): all but the run-queue wait.
    assert blocked_seconds(0.3, 0.01, 0.05, 1, 0.0) == pytest.approx(0.25)
    # A full garbage collection of 0.2 s during a computation of 0.25 s.
    assert blocked_seconds(0.25, 0.25, 0.0, 0, 0.2) == pytest.approx(0.05)


@pytest.mark.allow_slow_callbacks
@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs Linux CPU affinity")
def test_time_spent_preempted_by_another_process_is_not_blocking() -> None:
    cpu = min(os.sched_getaffinity(0))
    previous = os.sched_getaffinity(0)
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        os.sched_setaffinity(hog.pid, {cpu})
        os.sched_setaffinity(0, {cpu})  # this thread and the hog share one CPU
        took: list[float] = []

        async def busy() -> None:
            started = time.perf_counter()
            _spin(0.08)  # 80 ms of our own CPU: under the 100 ms limit
            took.append(time.perf_counter() - started)

        with guard_loop(0.1) as blocked:
            asyncio.run(busy())
    finally:
        os.sched_setaffinity(0, previous)
        hog.kill()
        hog.wait()
    assert took[0] > 0.1, f"the hog did not preempt the callback ({took[0]:.3f} s): the test proves nothing"
    assert blocked.found == [], blocked.found
