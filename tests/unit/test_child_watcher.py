"""The agent's event loop learns of its subprocesses' ends through pidfds: no thread per
subprocess (Python 3.11's default watcher starts one to block in waitpid), and exit
codes and signals read as before."""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
from collections.abc import Iterator

import pytest

from ringrift_runtime.aio import watch_children_by_pidfd

pytestmark = pytest.mark.skipif(sys.version_info >= (3, 12), reason="Python 3.12 watches by pidfd by itself")


@pytest.fixture
def restored_watcher() -> Iterator[None]:
    previous = asyncio.get_child_watcher()
    yield
    asyncio.get_child_watcher().close()
    asyncio.set_child_watcher(previous)


async def test_subprocesses_end_without_a_thread_each(restored_watcher: None) -> None:
    assert watch_children_by_pidfd()
    before = {t.ident for t in threading.enumerate()}
    sleepers = [await asyncio.create_subprocess_exec("sleep", "0.3") for _ in range(3)]
    during = [t.name for t in threading.enumerate() if t.ident not in before]
    exit_codes = await asyncio.gather(*(p.wait() for p in sleepers))
    assert exit_codes == [0, 0, 0]
    assert during == []  # the default watcher: asyncio-waitpid-0, -1, -2

    failing = await asyncio.create_subprocess_exec(sys.executable, "-c", "raise SystemExit(3)")
    assert await failing.wait() == 3
    killed = await asyncio.create_subprocess_exec("sleep", "30")
    killed.send_signal(signal.SIGKILL)
    assert await killed.wait() == -signal.SIGKILL
