"""The LoopManager: the leader's background loops (BEHAVIOUR.md, Background loops).

Loops start in dependency order (a loop starts once the loops it runs after have
completed their first round, or failed it), repeat at their interval, back off on errors
(1 s x 1.5^n up to 300 s, with jitter, never faster than the interval), report health
(degraded after 5 consecutive errors), can be paused and resumed by an operator (the
paused set is stored, so it survives a change of leader), and stop at once when the
leader's term ends: ``run`` is cancelled with the term, and only a stale epoch or lost
leadership ends it from inside.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from ringrift_runtime.errors import NotFound, NotLeader, RingriftError, StaleEpoch

log = logging.getLogger("ringrift.gateway.loops")

DEGRADED_AFTER = 5
BACKOFF_BASE, BACKOFF_FACTOR, BACKOFF_CAP = 1.0, 1.5, 300.0
PAUSED_REFRESH_SECONDS = 1.0
FIRST_ROUND_WAIT_SECONDS = 30.0  # a dependency that hangs does not hold the others back forever


@dataclass(frozen=True)
class Loop:
    name: str
    interval: float
    operation: Callable[[int], Awaitable[Any]]  # called with the leader's epoch
    after: tuple[str, ...] = ()
    description: str = ""


class Health(enum.StrEnum):
    HEALTHY = "HEALTHY"
    DEGRADED = "DEGRADED"
    PAUSED = "PAUSED"
    STOPPED = "STOPPED"
    STARTING = "STARTING"


@dataclass
class LoopStatus:
    """What a loop has done in the current (or last) term."""

    name: str
    interval: float
    description: str = ""
    running: bool = False
    starting: bool = False  # the replica leads; its loops have not started yet
    paused: bool = False
    runs: int = 0
    consecutive_errors: int = 0
    last_error: str = ""
    last_run_at: float | None = None
    next_run_at: float | None = None

    @property
    def health(self) -> Health:
        if not self.running:
            return Health.STARTING if self.starting else Health.STOPPED
        if self.paused:
            return Health.PAUSED
        if self.consecutive_errors >= DEGRADED_AFTER:
            return Health.DEGRADED
        return Health.HEALTHY

    def stopped(self) -> LoopStatus:
        return replace(self, running=False, starting=False, next_run_at=None)

    def to_json(self) -> dict[str, Any]:
        """The form the leader's heartbeat carries to the replicas that do not lead."""
        return {
            "name": self.name,
            "health": self.health.value,
            "interval_seconds": self.interval,
            "runs": self.runs,
            "consecutive_errors": self.consecutive_errors,
            "last_error": self.last_error,
            "last_run_at": self.last_run_at,
            "next_run_at": self.next_run_at,
            "description": self.description,
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> LoopStatus:
        health = Health(value.get("health", Health.STOPPED.value))
        return cls(
            name=str(value["name"]),
            interval=float(value.get("interval_seconds", 0.0)),
            description=str(value.get("description", "")),
            running=health not in (Health.STOPPED, Health.STARTING),
            starting=health is Health.STARTING,
            paused=health is Health.PAUSED,
            runs=int(value.get("runs", 0)),
            consecutive_errors=int(value.get("consecutive_errors", 0)),
            last_error=str(value.get("last_error", "")),
            last_run_at=value.get("last_run_at"),
            next_run_at=value.get("next_run_at"),
        )


class PauseStore(Protocol):
    async def load(self) -> set[str]: ...

    async def set(self, name: str, paused: bool) -> set[str]: ...


class LoopMetrics(Protocol):
    def observe(self, loop: str, outcome: str, seconds: float, consecutive_errors: int) -> None: ...

    def paused(self, loop: str, paused: bool) -> None: ...


Act = Callable[[str, Callable[[], Awaitable[Any]]], Awaitable[Any]]


def backoff_delay(errors: int, interval: float, rng: random.Random, base: float = BACKOFF_BASE) -> float:
    """Delay before the next round after ``errors`` consecutive errors: 1 s x 1.5^(n-1)
    with +-20 % jitter, capped at 300 s, and never shorter than the loop's interval."""
    if errors <= 0:
        return interval
    delay = min(base * BACKOFF_FACTOR ** (errors - 1), BACKOFF_CAP)
    delay = min(delay * rng.uniform(0.8, 1.2), BACKOFF_CAP)
    return max(interval, delay)


def start_order(loops: list[Loop]) -> list[Loop]:
    """Loops sorted so that each comes after the loops it runs after (stable otherwise)."""
    by_name = {loop.name: loop for loop in loops}
    if len(by_name) != len(loops):
        raise ValueError("two loops have the same name")
    for loop in loops:
        for dependency in loop.after:
            if dependency not in by_name:
                raise ValueError(f"loop {loop.name} runs after unknown loop {dependency}")
    ordered: list[Loop] = []
    placed: set[str] = set()
    while len(ordered) < len(loops):
        ready = [l for l in loops if l.name not in placed and all(d in placed for d in l.after)]
        if not ready:
            cycle = sorted(l.name for l in loops if l.name not in placed)
            raise ValueError(f"loops depend on each other in a cycle: {', '.join(cycle)}")
        for loop in ready:
            ordered.append(loop)
            placed.add(loop.name)
    return ordered


class LoopManager:
    def __init__(
        self,
        loops: list[Loop],
        pauses: PauseStore,
        metrics: LoopMetrics | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        backoff_base: float = BACKOFF_BASE,
    ) -> None:
        self._backoff_base = backoff_base
        self._loops = start_order(loops)
        self._pauses = pauses
        self.metrics = metrics  # set by the composition root once the registry exists
        self._clock = clock
        self._rng = rng or random.Random()
        self.records = {l.name: LoopStatus(l.name, l.interval, l.description) for l in self._loops}
        self._paused: set[str] = set()
        self._paused_at = float("-inf")
        self._wake: dict[str, asyncio.Event] = {}
        self.leading = False

    @property
    def names(self) -> list[str]:
        return [l.name for l in self._loops]

    def statuses(self) -> list[LoopStatus]:
        return [replace(self.records[name]) for name in self.names]

    def _record(self, name: str) -> LoopStatus:
        record = self.records.get(name)
        if record is None:
            raise NotFound(f"no loop named {name!r}; loops are: {', '.join(self.names)}")
        return record

    async def set_paused(self, name: str, paused: bool) -> LoopStatus:
        """Store the pause (any replica may take the request); this replica's loops, when it
        leads, follow at once, another leader within a second."""
        record = self._record(name)
        self._paused = await self._pauses.set(name, paused)
        self._paused_at = time.monotonic()
        self._apply_paused()
        if not paused and name in self._wake:
            self._wake[name].set()
        if self.leading:
            return replace(record)
        # The leading replica follows the stored pause within a second: answer as it will be.
        return replace(record, running=True, paused=paused)

    async def _refresh_paused(self) -> None:
        if time.monotonic() - self._paused_at < PAUSED_REFRESH_SECONDS:
            return
        self._paused_at = time.monotonic()  # before the read: concurrent loops share one
        try:
            self._paused = await self._pauses.load()
        except Exception as exc:  # keep the last known set; the store is retried next time
            log.debug("paused loops not refreshed: %s", exc)
        self._apply_paused()

    def _apply_paused(self) -> None:
        for name, record in self.records.items():
            record.paused = name in self._paused
            if self.metrics is not None:
                self.metrics.paused(name, record.paused)

    def starting(self, leading: bool) -> None:
        """The replica has become the leader and its loops will start (True), or that term
        ended before they did (False): status shows them STARTING meanwhile, not STOPPED."""
        for record in self.records.values():
            record.starting = leading and not record.running

    async def run(self, act: Act, epoch: int) -> None:
        """Run every loop until cancelled (the term ended) or a stale epoch / lost lease.
        ``act(what, operation)`` runs one fenced operation; each loop's operation is
        called with ``epoch``."""
        first_round = {l.name: asyncio.Event() for l in self._loops}
        self._wake = {l.name: asyncio.Event() for l in self._loops}
        self._paused_at = float("-inf")
        await self._refresh_paused()
        self.leading = True
        for record in self.records.values():
            record.running, record.starting, record.runs, record.consecutive_errors = True, False, 0, 0
            record.last_error, record.last_run_at, record.next_run_at = "", None, None
        try:
            async with asyncio.TaskGroup() as group:
                for loop in self._loops:
                    group.create_task(self._run_one(loop, act, epoch, first_round), name=f"loop-{loop.name}")
        except* (StaleEpoch, NotLeader) as failures:
            raise failures.exceptions[0] from None
        finally:
            self.leading = False
            for record in self.records.values():
                record.running, record.next_run_at = False, None

    async def _run_one(self, loop: Loop, act: Act, epoch: int, first_round: dict[str, asyncio.Event]) -> None:
        record = self.records[loop.name]
        for dependency in loop.after:
            try:
                await asyncio.wait_for(first_round[dependency].wait(), FIRST_ROUND_WAIT_SECONDS)
            except TimeoutError:
                log.warning("loop %s starts without waiting longer for %s", loop.name, dependency)
        try:
            while True:
                await self._refresh_paused()
                # Wakes from here on run the next round: one during this round is kept, and
                # a paused loop's wakes do not spin it.
                self._wake[loop.name].clear()
                if record.paused:
                    first_round[loop.name].set()  # a paused loop does not hold the others back
                    record.next_run_at = None
                    await self._sleep(loop.name, min(loop.interval, PAUSED_REFRESH_SECONDS))
                    continue
                delay = await self._round(loop, record, act, epoch)
                first_round[loop.name].set()
                record.next_run_at = self._clock() + delay
                await self._sleep(loop.name, delay)
        finally:
            first_round[loop.name].set()

    async def _round(self, loop: Loop, record: LoopStatus, act: Act, epoch: int) -> float:
        started = time.monotonic()
        outcome = "ok"
        try:
            await act(loop.name, lambda: loop.operation(epoch))
            record.consecutive_errors, record.last_error = 0, ""
        except (StaleEpoch, NotLeader, asyncio.CancelledError):
            raise
        except Exception as exc:  # a faulty dependency or a bug: counted, logged, retried later
            outcome = "error"
            record.consecutive_errors += 1
            record.last_error = f"{type(exc).__name__}: {exc}"[:500]
            log.warning(
                "loop %s failed (%d in a row): %s",
                loop.name,
                record.consecutive_errors,
                exc,
                exc_info=not isinstance(exc, RingriftError),
            )
        record.runs += 1
        record.last_run_at = self._clock()
        if self.metrics is not None:
            self.metrics.observe(loop.name, outcome, time.monotonic() - started, record.consecutive_errors)
        return backoff_delay(record.consecutive_errors, loop.interval, self._rng, self._backoff_base)

    def wake(self, name: str) -> None:
        """Run loop ``name`` now rather than at its next interval (an event it serves
        happened); a wake during a round runs one more round right after it."""
        if self.leading and name in self._wake:
            self._wake[name].set()

    async def _sleep(self, name: str, seconds: float) -> None:
        wake = self._wake[name]
        try:
            await asyncio.wait_for(wake.wait(), seconds)
        except TimeoutError:
            pass
