"""SyncPlanner's use cases: collect manifests (parallel, deadline, partial results,
cached), plan for a goal, execute a plan once at a time, and name the targets of a kind
of data."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass

from ringrift_runtime.errors import Conflict, NotFound
from ringrift_runtime.ids import ulid as new_id
from ringrift_settings import SyncSettings
from ringrift_sync.domain.executor import Progress, execute
from ringrift_sync.domain.planner import Goal, NodeFiles, Plan, Transfer, make_plan, wanted_files
from ringrift_sync.domain.ports import AgentFiles, SyncRecords, Trainers

log = logging.getLogger("ringrift.sync")


@dataclass(frozen=True)
class Member:
    node_id: str
    roles: frozenset[str]
    job_kinds: frozenset[str]


@dataclass
class Collected:
    manifests: dict[str, NodeFiles]
    missing: list[str]


class SyncPlanner:
    def __init__(
        self,
        settings: SyncSettings,
        files: AgentFiles,
        state: SyncRecords,
        trainers: Trainers,
        members: Callable[[], dict[str, Member]],
    ) -> None:
        self._settings = settings
        self._files = files
        self._state = state
        self._trainers = trainers
        self._members = members
        self._cache: dict[str, tuple[float, NodeFiles]] = {}
        self._plans: OrderedDict[str, Plan] = OrderedDict()
        self._progress: dict[str, Progress] = {}
        self._executing: set[str] = set()
        self._busy_out: dict[str, int] = {}

    # -- manifests --------------------------------------------------------------------

    async def collect(self, node_ids: list[str], refresh: bool) -> Collected:
        members = self._members()
        wanted = [n for n in (node_ids or sorted(members))]
        now = time.monotonic()
        fresh = {
            n: entry[1]
            for n in wanted
            if not refresh and (entry := self._cache.get(n)) and now - entry[0] < self._settings.manifest_cache_seconds
        }
        ask = [n for n in wanted if n not in fresh and n in members]
        results = await asyncio.gather(
            *(self._files.manifest(n, self._settings.manifest_timeout_seconds) for n in ask), return_exceptions=True
        )
        missing = [n for n in wanted if n not in members]
        for node_id, result in zip(ask, results, strict=True):
            if isinstance(result, BaseException):
                log.info("no manifest from %s: %s", node_id, result)
                missing.append(node_id)
            else:
                fresh[node_id] = result
                self._cache[node_id] = (time.monotonic(), result)
        return Collected(fresh, sorted(missing))

    def forget(self, node_ids: Iterable[str]) -> None:
        for node_id in node_ids:
            self._cache.pop(node_id, None)

    # -- targets and plans ------------------------------------------------------------

    async def targets(self, goal: Goal, config_key: str, manifests: dict[str, NodeFiles] | None = None) -> list[str]:
        """Games and training files go to the node that will train the config; models go
        to every node that runs self-play or gauntlets for it."""
        members = self._members()
        if goal is Goal.MODEL_TO_PLAYERS:
            return sorted(
                m.node_id
                for m in members.values()
                if (m.roles & {"selfplay", "gauntlet"}) and (not m.job_kinds or m.job_kinds & {"selfplay", "gauntlet"})
            )
        holders = []
        if manifests:
            counts = {
                n: sum(f.game_count or 1 for f in m.files if f.kind == "games" and f.config_key == config_key)
                for n, m in manifests.items()
            }
            holders = [n for n, c in sorted(counts.items(), key=lambda kv: -kv[1]) if c][:3]
        return await self._trainers.best(config_key, holders)

    async def plan(self, goal: Goal, config_key: str, targets: list[str], model_sha256: str) -> tuple[Plan, list[str]]:
        # Plans are made from fresh manifests (a model trained a second ago must be
        # seen); agents cache hashes, so a fresh manifest costs a directory scan.
        collected = await self.collect([], refresh=True)
        if goal is Goal.MODEL_TO_PLAYERS and not model_sha256:
            best = await self._state.best_model(config_key)
            if best is None:
                raise NotFound(f"{config_key} has no promoted model yet")
            model_sha256 = best.sha256
        targets = targets or await self.targets(goal, config_key, collected.manifests)
        files = wanted_files(goal, config_key, collected.manifests, model_sha256)
        plan = make_plan(
            f"plan-{new_id()}",
            goal,
            config_key,
            files,
            collected.manifests,
            targets,
            self._busy_out,
            self._settings.disk_limit_percent,
            lambda: f"xfer-{new_id()}",
        )
        self._plans[plan.plan_id] = plan
        while len(self._plans) > self._settings.plans_kept:
            old, _ = self._plans.popitem(last=False)
            self._progress.pop(old, None)
        return plan, collected.missing

    def get(self, plan_id: str) -> tuple[Plan, Progress | None]:
        plan = self._plans.get(plan_id)
        if plan is None:
            raise NotFound(
                f"sync plan {plan_id} is unknown (plans are kept in memory; the newest {self._settings.plans_kept})"
            )
        return plan, self._progress.get(plan_id)

    # -- execution --------------------------------------------------------------------

    async def execute(self, plan_id: str, epoch: int, report: Callable[[Progress], None]) -> Progress:
        plan, _ = self.get(plan_id)
        if plan_id in self._executing:
            raise Conflict(f"sync plan {plan_id} is already executing")
        self._executing.add(plan_id)
        try:
            await self._state.record(plan_id, [(t, "planned", 0, "") for t in plan.transfers], epoch)
            await self._state.publish(
                "SYNC_STARTED",
                plan_id,
                plan.config_key,
                {"goal": plan.goal.value, "transfers": len(plan.transfers), "bytes": plan.total_bytes},
                epoch,
                f"{plan_id}/started/{epoch}",
            )

            def seen(progress: Progress) -> None:
                self._progress[plan_id] = progress
                report(progress)

            progress = await execute(
                plan,
                _EpochPuller(self._files, epoch, self._busy_out),
                self._settings.max_transfers_in,
                self._settings.max_transfers_out,
                self._settings.bandwidth_bytes_per_second,
                lambda t, state, done, error: self._state.record(plan_id, [(t, state, done, error)], epoch),
                seen,
            )
            self.forget({t.target for t in plan.transfers})
            outcome = "SYNC_FAILED" if progress.transfers_failed else "SYNC_COMPLETED"
            await self._state.publish(
                outcome,
                plan_id,
                plan.config_key,
                {
                    "goal": plan.goal.value,
                    "done": progress.transfers_done,
                    "failed": progress.transfers_failed,
                    "bytes": progress.bytes_done,
                    "errors": "; ".join(list(progress.errors.values())[:3]),
                },
                epoch,
                f"{plan_id}/finished/{epoch}",
            )
            return progress
        finally:
            self._executing.discard(plan_id)


class _EpochPuller:
    """Counts a node's transfers out while they run (source choice of later plans)."""

    def __init__(self, files: AgentFiles, epoch: int, busy_out: dict[str, int]) -> None:
        self._files, self._epoch, self._busy_out = files, epoch, busy_out

    async def pull(self, transfer: Transfer, max_bytes_per_second: int) -> AsyncIterator[int]:
        self._busy_out[transfer.source] = self._busy_out.get(transfer.source, 0) + 1
        try:
            async for done in self._files.pull(transfer, max_bytes_per_second, self._epoch):
                yield done
        finally:
            self._busy_out[transfer.source] -= 1
