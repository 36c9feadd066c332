"""JobDispatcher, JobReaper and JobCleanup (BEHAVIOUR.md, Background loops and
Retention): JobService places pending jobs, reaps lost, stuck and unverified ones, and
moves terminal jobs to history and deletes old history; the leader's loops ask it to,
with the epoch."""

from __future__ import annotations

from typing import Any, Protocol


class JobRounds(Protocol):
    async def dispatch(self, epoch: int) -> Any: ...

    async def reap(self, epoch: int) -> Any: ...

    async def cleanup(self, epoch: int) -> Any: ...


class JobDispatcher:
    def __init__(self, jobs: JobRounds) -> None:
        self._jobs = jobs

    async def __call__(self, epoch: int) -> Any:
        return await self._jobs.dispatch(epoch)


class JobReaper:
    def __init__(self, jobs: JobRounds) -> None:
        self._jobs = jobs

    async def __call__(self, epoch: int) -> Any:
        return await self._jobs.reap(epoch)


class JobCleanup:
    def __init__(self, jobs: JobRounds) -> None:
        self._jobs = jobs

    async def __call__(self, epoch: int) -> Any:
        return await self._jobs.cleanup(epoch)
