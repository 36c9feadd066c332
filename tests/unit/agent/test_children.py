"""The agent's child processes (real processes): exit codes and signals as asyncio gave
them, input written without blocking the loop, no thread per child, and a job whose
agent stops gracefully keeps running whatever child watcher asyncio uses (a pidfd
watcher, Python 3.12's default, let go of the processes and asyncio killed them)."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from ringrift_agent.adapters.children import PIPE, Child
from ringrift_agent.adapters.outbox import Outbox
from ringrift_agent.adapters.runner import JobRunner
from ringrift_agent.domain.attempts import Attempt
from ringrift_contracts.jobs import JobState
from tests.polling import until, wait_for


def _python(code: str, tmp_path: Path, **kwargs) -> Child:
    return Child.spawn([sys.executable, "-c", code], cwd=tmp_path, env=dict(os.environ), **kwargs)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _sleeping_in(group: int) -> bool:
    """A live ``sleep`` runs in the process group (led by the job's wrapper)."""
    for process in psutil.process_iter(["name"]):
        try:
            if process.info["name"] == "sleep" and os.getpgid(process.pid) == group and _alive(process.pid):
                return True
        except (ProcessLookupError, psutil.Error):
            continue
    return False


async def test_exit_codes_and_signals_are_reported_as_asyncio_reported_them(tmp_path: Path) -> None:
    exits = _python("raise SystemExit(3)", tmp_path)
    sleeps = _python("import time; time.sleep(30)", tmp_path)
    assert await asyncio.wait_for(exits.wait(), 10) == 3 and exits.returncode == 3
    assert sleeps.returncode is None
    with pytest.raises(TimeoutError):  # a cancelled wait leaves it watched
        await asyncio.wait_for(sleeps.wait(), 0.1)
    os.kill(sleeps.pid, signal.SIGTERM)
    assert await asyncio.wait_for(sleeps.wait(), 10) == -signal.SIGTERM
    sleeps.kill()  # exited already: nothing is sent


async def test_input_larger_than_a_pipe_reaches_the_child_while_the_loop_runs(tmp_path: Path) -> None:
    data = os.urandom(1024 * 1024)  # sixteen times a pipe's buffer
    out = tmp_path / "out"
    child = _python(
        f"import sys, time; time.sleep(0.3); open({str(out)!r}, 'wb').write(sys.stdin.buffer.read())",
        tmp_path,
        stdin=PIPE,
    )
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    ticking = asyncio.create_task(tick())
    try:
        await asyncio.wait_for(child.send_input(data), 10)
        assert await asyncio.wait_for(child.wait(), 10) == 0
    finally:
        ticking.cancel()
    assert out.read_bytes() == data
    assert ticks >= 10  # the loop ran while the child was not reading yet


async def test_input_to_a_child_that_is_gone_is_a_broken_pipe(tmp_path: Path) -> None:
    child = _python("pass", tmp_path, stdin=PIPE)
    await asyncio.wait_for(child.wait(), 10)
    with pytest.raises(BrokenPipeError):
        await child.send_input(b"x" * 200_000)


async def test_children_are_watched_without_a_thread_each(tmp_path: Path) -> None:
    before = threading.active_count()
    children = [_python("import time; time.sleep(30)", tmp_path) for _ in range(5)]
    try:
        assert threading.active_count() <= before  # a thread each would be five more
    finally:
        for child in children:
            child.kill()
    assert [await asyncio.wait_for(c.wait(), 10) for c in children] == [-signal.SIGKILL] * 5


async def test_a_child_let_go_keeps_running(tmp_path: Path) -> None:
    child = _python("import time; time.sleep(30)", tmp_path)
    pid = child.pid
    child.close()
    del child
    gc.collect()
    await asyncio.sleep(0.2)
    try:
        assert _alive(pid)
    finally:
        os.kill(pid, signal.SIGKILL)
    assert wait_for(lambda: not _alive(pid), 10)


def test_the_job_of_a_runner_stopped_gracefully_outlives_it_under_a_pidfd_child_watcher(tmp_path: Path) -> None:
    """What a restart relies on: the agent stops, its jobs keep running. Run under the
    pidfd child watcher (Python 3.12's default; 3.11's is a thread per child, which
    hid the problem)."""
    if sys.version_info < (3, 12):
        policy = asyncio.get_event_loop_policy()
        previous = policy.get_child_watcher()  # type: ignore[attr-defined]
        policy.set_child_watcher(asyncio.PidfdChildWatcher())  # type: ignore[attr-defined]
    try:
        pid = asyncio.run(_run_and_stop(tmp_path))
    finally:
        if sys.version_info < (3, 12):
            policy.set_child_watcher(previous)  # type: ignore[attr-defined]
    try:
        gc.collect()
        time.sleep(0.3)
        # The wrapper leads the group and is what a restarted agent re-adopts.
        assert _alive(pid) and _sleeping_in(pid), "the job died with the runner"
    finally:
        os.killpg(pid, signal.SIGKILL)


async def _run_and_stop(tmp_path: Path) -> int:
    async def send(event: dict) -> None:
        return None

    runner = JobRunner(tmp_path, "node-t", Outbox(tmp_path / "outbox", send), 1.0, {})
    attempt = Attempt(
        job_id="job-kept",
        attempt=1,
        kind="sleep",
        config_key="",
        work_dir=str(tmp_path / "jobs" / "job-kept" / "1"),
        argv=["sleep", "30"],
        timeout_seconds=60,
        epoch=1,
    )
    started, _ = await runner.run(attempt, [])
    assert started.state is JobState.RUNNING
    await until("the job's process runs", lambda: _sleeping_in(started.pid), timeout=10)
    await runner.stop()
    del runner
    gc.collect()
    await asyncio.sleep(0.2)
    return started.pid
