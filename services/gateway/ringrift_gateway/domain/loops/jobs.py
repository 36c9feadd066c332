"""JobDispatcher, JobReaper and JobCleanup (BEHAVIOUR.md, Background loops and
Retention): JobService places pending jobs, reaps lost, stuck and unverified ones, and
moves terminal jobs to history and deletes old history; the leader's loops ask it to,
with the epoch."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import Any, Protocol

DISPATCHER = "JobDispatcher"
# What gives dispatch something to do: a new or retried job, a slot freed by an ending one.
NEW_WORK = ("JOB_SUBMITTED", "JOB_RETRIED")
DISPATCH_EVENTS = [*NEW_WORK, "JOB_SUCCEEDED", "JOB_FAILED", "JOB_CANCELLED", "JOB_LOST"]


class JobRounds(Protocol):
    async def dispatch(self, epoch: int) -> Any: ...

    async def reap(self, epoch: int) -> Any: ...

    async def cleanup(self, epoch: int) -> Any: ...


class Waker(Protocol):
    """LoopManager as DispatchWakes uses it."""

    @property
    def leading(self) -> bool: ...

    def wake(self, name: str) -> None: ...


class DispatchWakes:
    """When JobDispatcher runs between its safety rounds (BEHAVIOUR.md: no poll sets the
    latency). A job submitted through the leading replica wakes it as soon as JobService
    has created the job, not when the JOB_SUBMITTED event comes back through StateService's
    stream (~5 ms later); that event then wakes nobody (a second round would list the
    backlog again for nothing). A submission through another replica and a retry wake it
    when their events arrive; an ending job (a freed slot) wakes it unless the last round
    found the backlog empty and nothing was submitted or retried since: with nothing to
    place, that round would cost StateService two listings on every job's end."""

    def __init__(self, loops: Waker | None = None, remember: int = 10_000) -> None:
        self._loops = loops
        self._remember = remember
        self._woken: OrderedDict[str, None] = OrderedDict()  # submitted here, event not seen yet
        self._backlog_empty = False  # the last round placed every job it could; no new work since

    def bind(self, loops: Waker) -> None:
        """The loops it wakes (they are built with JobDispatcher, which reports to it)."""
        self._loops = loops

    def _wake(self) -> None:
        if self._loops is not None:
            self._loops.wake(DISPATCHER)

    def submitted(self, job_ids: Iterable[str]) -> None:
        """Jobs created through this replica (not ones an idempotency key found)."""
        created = list(job_ids)
        if self._loops is None or not self._loops.leading or not created:
            return
        self._woken.update(dict.fromkeys(created))
        while len(self._woken) > self._remember:  # events that never came: forget the oldest
            self._woken.popitem(last=False)
        self._backlog_empty = False
        self._wake()

    def event(self, event_type: str, subject: str) -> None:
        """An event of DISPATCH_EVENTS from StateService's stream."""
        if event_type in NEW_WORK:
            if event_type == "JOB_SUBMITTED" and subject in self._woken:
                del self._woken[subject]
                return
            self._backlog_empty = False
        elif self._backlog_empty:
            return  # a slot freed, and no job waits for one
        self._wake()

    def round_done(self, backlog_empty: bool) -> None:
        """What a dispatch round found. New work that came during the round has set a wake
        already: the round after it says again."""
        self._backlog_empty = backlog_empty


class JobDispatcher:
    def __init__(self, jobs: JobRounds, wakes: DispatchWakes | None = None) -> None:
        self._jobs = jobs
        self._wakes = wakes

    async def __call__(self, epoch: int) -> Any:
        reply = await self._jobs.dispatch(epoch)
        if self._wakes is not None:
            self._wakes.round_done(reply.backlog_empty)
        return reply


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
