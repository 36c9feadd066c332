"""Coalescing concurrent calls into one batch call."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

I = TypeVar("I")
R = TypeVar("R")


class Batcher(Generic[I, R]):
    """Collects items submitted concurrently and hands them to ``flush`` as one list; each
    submitter gets its own result. A batch goes as soon as the previous one returned,
    so batches grow with load and cost nothing when idle."""

    def __init__(self, flush: Callable[[list[I]], Awaitable[Sequence[R]]], max_size: int) -> None:
        self._flush = flush
        self._max = max_size
        self._queue: list[tuple[I, asyncio.Future[R]]] = []
        self._task: asyncio.Task[None] | None = None  # the running drain, held so it is not collected

    async def submit(self, item: I) -> R:
        (result,) = await self.submit_all([item])
        return result

    async def submit_all(self, items: list[I]) -> list[R]:
        """``items`` in this order, in one batch unless the batch's size limit splits them."""
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[R]] = [loop.create_future() for _ in items]
        self._queue.extend(zip(items, futures, strict=True))
        if self._task is None:
            self._task = asyncio.ensure_future(self._drain())
        await asyncio.wait(futures)
        errors = [future.exception() for future in futures]  # each read: none "never retrieved"
        first = next((error for error in errors if error is not None), None)
        if first is not None:
            raise first
        return [future.result() for future in futures]

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[: self._max], self._queue[self._max :]
                try:
                    results = await self._flush([item for item, _ in batch])
                except Exception as exc:  # every submitter of the batch gets it
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            self._task = None
