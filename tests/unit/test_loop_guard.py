"""The slow-callback guard measures the loop's own blocking, not wall time: a blocking
call is caught; a callback preempted by another process sharing its CPU is not."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import pytest

from ringrift_runtime.testing.loop_guard import guard_loop


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
