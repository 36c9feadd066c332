"""The agent's child processes, watched on the event loop without asyncio's subprocess
transports.

A job's process must outlive an agent that stops gracefully: the restarted agent
re-adopts it. asyncio kills the process of a subprocess transport that is
garbage-collected while it runs, and whether a stopping agent's transports stay alive
depends on the child watcher: Python 3.11's default (a thread per process) holds them
until each process exits, the pidfd watcher (3.12's default) lets go of them, and the
jobs died with the agent. A Child is a ``subprocess.Popen`` whose exit is watched through
a pidfd on the event loop: no thread per process (~0.3 CPU ms a spawn with one, ~0.2
without), and letting go of it (``close``) leaves its process running.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

PIPE = subprocess.PIPE
DEVNULL = subprocess.DEVNULL


class Child:
    """One child process: its pid, its exit code once it exited (negative: the signal
    that ended it), and its standard input when it was started with one (``PIPE``)."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self._popen = popen
        self.pid = popen.pid
        self._loop = asyncio.get_running_loop()
        self._exited: asyncio.Future[int] = self._loop.create_future()
        self._pidfd: int | None = None
        try:
            self._pidfd = os.pidfd_open(self.pid)
        except (AttributeError, OSError):  # no pidfd (not Linux, a kernel before 5.3): a thread waits
            threading.Thread(target=self._wait_in_thread, name=f"child-{self.pid}", daemon=True).start()
        else:
            self._loop.add_reader(self._pidfd, self._poll)

    @classmethod
    def spawn(
        cls,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        stdin: int | IO[Any] = DEVNULL,
        stdout: int | IO[Any] = DEVNULL,
        stderr: int | IO[Any] = DEVNULL,
        start_new_session: bool = False,
    ) -> Child:
        """Start ``argv`` (never through a shell); OSError when it cannot be started."""
        popen = subprocess.Popen(
            list(argv),
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            cwd=cwd,
            env=dict(env),
            start_new_session=start_new_session,
        )
        return cls(popen)

    @property
    def returncode(self) -> int | None:
        return self._exited.result() if self._exited.done() and not self._exited.cancelled() else None

    async def wait(self) -> int:
        """Its exit code, once it exited (a cancelled wait leaves it watched)."""
        return await asyncio.shield(self._exited)

    def kill(self) -> None:
        """SIGKILL, unless it exited already."""
        if self.returncode is None:
            self._popen.kill()  # polls first: never a signal to a pid it already reaped

    async def send_input(self, data: bytes) -> None:
        """Write ``data`` to its standard input and close it (the end of its input);
        BrokenPipeError when it is gone. The loop is never blocked by a full pipe."""
        pipe = self._popen.stdin
        if pipe is None:
            raise BrokenPipeError("the child was started without a standard input")
        fd = pipe.fileno()
        try:
            os.set_blocking(fd, False)
            view = memoryview(data)
            while view:
                try:
                    view = view[os.write(fd, view) :]
                except BlockingIOError:
                    await self._writable(fd)
        finally:
            self.close_input()

    def close_input(self) -> None:
        """Close its standard input: a child reading it sees the end."""
        if self._popen.stdin is not None:
            try:
                self._popen.stdin.close()
            except BrokenPipeError:
                pass

    def close(self) -> None:
        """Stop watching it and let it go: its process keeps running (the agent stops,
        a restarted one re-adopts it from its work directory)."""
        self.close_input()
        self._unwatch()
        if not self._exited.done():
            self._exited.cancel()

    # -- watching --------------------------------------------------------------
    def _poll(self) -> None:
        code = self._popen.poll()  # waitpid(pid, WNOHANG): the pidfd says it exited
        if code is not None:
            self._unwatch()
            if not self._exited.done():
                self._exited.set_result(code)

    def _unwatch(self) -> None:
        if self._pidfd is not None:
            self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None

    def _wait_in_thread(self) -> None:
        code = self._popen.wait()
        try:
            self._loop.call_soon_threadsafe(self._exit_from_thread, code)
        except RuntimeError:  # the loop is closed: nobody waits any more
            pass

    def _exit_from_thread(self, code: int) -> None:
        if not self._exited.done():
            self._exited.set_result(code)

    async def _writable(self, fd: int) -> None:
        ready = self._loop.create_future()
        self._loop.add_writer(fd, lambda: ready.done() or ready.set_result(None))
        try:
            await ready
        finally:
            self._loop.remove_writer(fd)
