"""Small asyncio helpers shared by long-lived background tasks."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")

log = logging.getLogger("ringrift.aio")


async def cancel_and_wait(task: asyncio.Task | None) -> None:
    """Cancel ``task`` and wait until it has finished unwinding."""
    if task is None:
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass


async def quietly(awaitable: Awaitable[object], what: str = "") -> None:
    """Best effort on the way out (closing a broken client, a last notification)."""
    try:
        await awaitable
    except Exception as exc:
        if what:
            log.debug("%s failed: %r", what, exc)


class SingleFlight(Generic[T]):
    """A computation shared by concurrent callers and reused for ``ttl`` seconds: twenty
    requests at once cost one computation. A failed computation is not cached."""

    def __init__(
        self, compute: Callable[[], Awaitable[T]], ttl: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._compute = compute
        self._ttl = ttl
        self._clock = clock
        self._task: asyncio.Task[T] | None = None
        self._value: T | None = None
        self._at = float("-inf")
        self.computations = 0

    async def get(self) -> T:
        if self._value is not None and self._clock() - self._at < self._ttl:
            return self._value
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())
        # shield: a caller that gives up (deadline) does not cancel the others' computation
        return await asyncio.shield(self._task)

    async def _run(self) -> T:
        self.computations += 1
        try:
            value = await self._compute()
            self._value, self._at = value, self._clock()
            return value
        finally:
            self._task = None
