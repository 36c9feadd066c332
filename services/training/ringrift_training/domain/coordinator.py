"""TrainingCoordinator's use cases. A trigger creates a run (idempotent per config, games
bucket and 15-minute window); a driver task per config then walks the run through its
stages, waiting on jobs, until it is promoted, rejected or failed. Every stage change is
saved to StateService first, so another replica (after a failover, the new leader's
trigger) picks the run up where it stopped. Any step is fenced by the leader epoch it was
started with; a stale epoch stops the driver at once."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Callable
from typing import Any

from ringrift_contracts.ids import parse_config_key
from ringrift_runtime.aio import cancel_and_wait
from ringrift_runtime.errors import NotFound, RingriftError, StaleEpoch
from ringrift_runtime.ids import ulid
from ringrift_runtime.skipped import SkippedRecords
from ringrift_settings import PipelineSettings, TrainingSettings
from ringrift_training.domain import stages
from ringrift_training.domain.readiness import Readiness, readiness, thresholds
from ringrift_training.domain.runs import Run, Stage, fold

log = logging.getLogger("ringrift.training")
MAX_STEP_ERRORS = 5


class Coordinator:
    def __init__(
        self,
        training: TrainingSettings,
        pipeline: PipelineSettings,
        ports: stages.Ports,
        clock: Callable[[], float] = time.time,
        poll_seconds: float = 1.0,
        skipped: SkippedRecords | None = None,
    ) -> None:
        self.training, self.pipeline, self.ports = training, pipeline, ports
        self.skipped = skipped or SkippedRecords("training")
        self._clock = clock
        self._poll = poll_seconds
        self.runs: dict[str, Run] = {}
        self._after = 0
        self._drivers: dict[str, asyncio.Task[None]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._refresh_lock = asyncio.Lock()

    # -- runs -------------------------------------------------------------------------

    async def refresh(self) -> None:
        async with self._refresh_lock:
            events, self._after = await self.ports.state.run_events(self._after)
            for sequence, reason in fold(self.runs, events):
                await self.skipped.skip("run_event", f"event {sequence}", reason)

    def active_run(self, config_key: str) -> Run | None:
        active = [r for r in self.runs.values() if r.config_key == config_key and not r.finished]
        return max(active, key=lambda r: r.started_at) if active else None

    async def list_runs(self, config_key: str) -> list[Run]:
        await self.refresh()
        runs = [r for r in self.runs.values() if not config_key or r.config_key == config_key]
        return sorted(runs, key=lambda r: (r.started_at, r.run_id), reverse=True)

    def find(self, predicate: Callable[[Run], bool]) -> Run:
        for run in self.runs.values():
            if predicate(run):
                return run
        raise NotFound("no training run matches")

    # -- readiness and triggers -------------------------------------------------------

    async def readiness(self, config_key: str) -> tuple[list[Readiness], int]:
        await self.refresh()
        stats = await self.ports.state.stats()
        gpu_nodes = await self.ports.nodes.gpu_trainers()
        now = self._clock()
        found = []
        for key in [config_key] if config_key else self.pipeline.configs:
            s = stats.get(key)
            total = s.games_total if s else 0
            since = s.games_since_training if s else 0
            started = s.last_training_started.seconds if s and s.HasField("last_training_started") else 0
            limits = thresholds(self.training, self.pipeline.profile, gpu_nodes, since)
            found.append(readiness(key, total, since, float(started), self.active_run(key) is not None, now, limits))
        return found, gpu_nodes

    async def trigger(self, config_key: str, force: bool, epoch: int) -> tuple[bool, Run | None, str]:
        parse_config_key(config_key)
        lock = self._locks.setdefault(config_key, asyncio.Lock())
        async with lock:
            (ready,), _ = await self.readiness(config_key)
            active = self.active_run(config_key)
            if active is not None:
                self.drive(active, epoch)
                return False, active, "a training run is in progress"
            if not ready.ready and not force:
                return False, None, ready.reason
            now = self._clock()
            key = (
                f"{config_key}/{ready.games_total // self.training.trigger_games_bucket}"
                f"/{int(now // self.training.trigger_window_seconds)}"
            )
            if force:
                key += f"/forced/{int(now)}"
            run = Run(run_id=f"run-{ulid().lower()}", config_key=config_key, trigger_key=key, started_at=now)
            first = await self.ports.state.publish(
                stages.TRAINING_STARTED,
                run.run_id,
                config_key,
                {"trigger_key": key, "games": ready.games_total, "forced": str(force).lower()},
                epoch,
                key,
            )
            if first.subject != run.run_id:  # the same trigger fired before: that run stands
                await self.refresh()
                existing = self.runs.get(first.subject)
                if existing is not None:
                    return False, existing, "already triggered for this games bucket and window"
                # Its coordinator died between announcing the run and saving it: adopt it.
                run.run_id = first.subject
            await stages.save(self.ports, run, epoch)
            self.runs[run.run_id] = run
            await self.ports.state.mark(config_key, epoch, f"{run.run_id}/started", started=True)
            log.info("training run %s started for %s (%s)", run.run_id, config_key, key)
            self.drive(run, epoch)
            return True, run, ""

    # -- the driver -------------------------------------------------------------------

    def drive(self, run: Run, epoch: int) -> None:
        """Start (or keep) the driver task of the run's config."""
        task = self._drivers.get(run.config_key)
        if task is not None and not task.done():
            return
        # A fresh context: the driver outlives the RPC that started it, so it must not
        # inherit that call's deadline or request id.
        self._drivers[run.config_key] = asyncio.create_task(
            self._drive(run.run_id, epoch), name=f"run-{run.config_key}", context=contextvars.Context()
        )

    async def _drive(self, run_id: str, epoch: int) -> None:
        errors = 0
        while True:
            run = self.runs[run_id]
            if run.finished:
                return
            try:
                waiting = await stages.step(self.ports, self.training, run, epoch, self._clock)
                errors = 0
            except StaleEpoch:
                log.warning("run %s: epoch %d is stale; the current leader continues the run", run_id, epoch)
                return
            except RingriftError as exc:
                errors += 1
                log.warning("run %s: step failed (%d/%d): %s", run_id, errors, MAX_STEP_ERRORS, exc)
                if errors >= MAX_STEP_ERRORS:
                    await self._fail(run, epoch, f"gave up after {errors} errors: {exc}")
                    return
                waiting = True
            except Exception:
                log.exception("run %s: unexpected error; the run fails (fail-closed)", run_id)
                await self._fail(run, epoch, "internal error in the coordinator")
                return
            if waiting:
                await asyncio.sleep(self._poll * (1 if not errors else min(30, 2**errors)))

    async def _fail(self, run: Run, epoch: int, reason: str) -> None:
        try:
            await stages.fail(self.ports, run, epoch, reason, self._clock)
        except RingriftError as exc:  # the next trigger of the config finds the run and retries
            log.warning("run %s: could not record its failure: %s", run.run_id, exc)

    async def stop(self) -> None:
        for task in self._drivers.values():
            await cancel_and_wait(task)

    # -- ratings ----------------------------------------------------------------------

    async def rollback(self, config_key: str, to_model_id: str, reason: str, epoch: int) -> tuple[Any, list[str]]:
        """The config's best moved back (stages.rollback); the new best and the archived ids."""
        return await stages.rollback(self.ports, config_key, to_model_id, reason, epoch)

    async def fit_ratings(self, config_key: str, epoch: int) -> list[Any]:
        """Refit the config (or every config) from all its matches; the stored ratings."""
        fitted: list[Any] = []
        for key in [config_key] if config_key else self.pipeline.configs:
            fitted.extend(await stages.fit_ratings(self.ports, self.training, key, epoch))
        return fitted


def is_run_of_job(job_id: str) -> Callable[[Run], bool]:
    return lambda run: (
        job_id in (run.export_job_id, run.training_job_id)
        or any(entry.split(":", 1)[1] == job_id for entry in run.gauntlet_jobs)
    )


def is_run_of_model(model_id: str) -> Callable[[Run], bool]:
    return lambda run: run.candidate_model_id == model_id


__all__ = ["Coordinator", "Stage", "is_run_of_job", "is_run_of_model"]
