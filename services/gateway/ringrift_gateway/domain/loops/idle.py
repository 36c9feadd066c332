"""IdleDetection (BEHAVIOUR.md, Background loops): a self-play node with no jobs (or a GPU
below 10 %) for 15 s gets work at once; a GPU node below 5 % with jobs for 10 minutes is a
zombie and its self-play jobs are restarted; one action per node per cooldown. What it
remembers between rounds (idle timers, cooldowns) is soft state a new leader rebuilds
within one idle period."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from ringrift_contracts.nodes import detected_gpu_count, takes_selfplay
from ringrift_gateway.domain.ports import Membership
from ringrift_settings import GatewaySettings

log = logging.getLogger("ringrift.gateway.idle")


@dataclass(frozen=True)
class IdleRules:
    idle_seconds: float  # no jobs (or GPU below idle_gpu_percent) this long: give it work now
    idle_gpu_percent: float
    zombie_seconds: float  # GPU below zombie_gpu_percent with jobs this long: restart its self-play jobs
    zombie_gpu_percent: float
    cooldown_seconds: float  # per node, between two actions

    @classmethod
    def of(cls, settings: GatewaySettings) -> IdleRules:
        return cls(
            idle_seconds=settings.idle_seconds,
            idle_gpu_percent=settings.idle_gpu_percent,
            zombie_seconds=settings.zombie_seconds,
            zombie_gpu_percent=settings.zombie_gpu_percent,
            cooldown_seconds=settings.idle_cooldown_seconds,
        )


@dataclass
class IdleVerdict:
    feed: list[str] = field(default_factory=list)  # nodes to give work now
    restart: list[str] = field(default_factory=list)  # zombie nodes: restart their self-play jobs


class IdleTracker:
    """Per node: since when it has been idle or a zombie, and when it was last acted on."""

    def __init__(self, rules: IdleRules) -> None:
        self.rules = rules
        self._idle_since: dict[str, float] = {}
        self._zombie_since: dict[str, float] = {}
        self._acted_at: dict[str, float] = {}

    def observe(self, nodes: dict[str, tuple[bool, float]], jobs: dict[str, int], now: float) -> IdleVerdict:
        """``nodes``: node -> (has a GPU, GPU utilisation %); ``jobs``: active jobs per node."""
        r, verdict = self.rules, IdleVerdict()
        for gone in set(self._idle_since) - set(nodes):
            self._idle_since.pop(gone, None)
        for gone in set(self._zombie_since) - set(nodes):
            self._zombie_since.pop(gone, None)
        for node_id, (has_gpu, gpu) in sorted(nodes.items()):
            running = jobs.get(node_id, 0)
            idle = running == 0 or (has_gpu and gpu < r.idle_gpu_percent)
            zombie = has_gpu and running > 0 and gpu < r.zombie_gpu_percent
            self._idle_since.setdefault(node_id, now) if idle else self._idle_since.pop(node_id, None)
            self._zombie_since.setdefault(node_id, now) if zombie else self._zombie_since.pop(node_id, None)
            if now - self._acted_at.get(node_id, float("-inf")) < r.cooldown_seconds:
                continue
            if zombie and now - self._zombie_since[node_id] >= r.zombie_seconds:
                verdict.restart.append(node_id)
            elif idle and now - self._idle_since[node_id] >= r.idle_seconds:
                verdict.feed.append(node_id)
            else:
                continue
            self._acted_at[node_id] = now
            self._idle_since.pop(node_id, None)
            self._zombie_since.pop(node_id, None)
        return verdict


class IdleJobs(Protocol):
    async def active_jobs_by_node(self, kind: str = "") -> dict[str, int]: ...

    async def active_job_ids(self, node_id: str, kind: str) -> list[str]: ...

    async def cancel_many(self, job_ids: list[str], reason: str) -> int: ...


class IdleDetection:
    def __init__(
        self,
        jobs: IdleJobs,
        members: Membership,
        feed: Callable[[int, list[str]], Awaitable[int]],
        rules: IdleRules,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._jobs = jobs
        self._members = members
        self._feed = feed  # (epoch, node ids) -> jobs queued (the QueuePopulator for those nodes)
        self._tracker = IdleTracker(rules)
        self._clock = clock

    async def __call__(self, epoch: int) -> IdleVerdict:
        nodes = {  # has a GPU (a declared one the machine lacks reports no utilisation), GPU %
            node_id: (bool(detected_gpu_count(node)), node.metrics.gpu_utilization_percent)
            for node_id, node in self._members.values().items()
            if takes_selfplay(node)
        }
        jobs = await self._jobs.active_jobs_by_node()
        verdict = self._tracker.observe(nodes, jobs, self._clock())
        for node_id in verdict.restart:
            ids = await self._jobs.active_job_ids(node_id, "selfplay")
            stopped = await self._jobs.cancel_many(
                ids, "zombie: GPU idle with jobs running; the queue refills the node"
            )
            log.warning(
                "node %s looks like a zombie (GPU idle with jobs): cancelled %d self-play jobs", node_id, stopped
            )
        if verdict.feed or verdict.restart:
            queued = await self._feed(epoch, verdict.feed + verdict.restart)
            log.info("idle nodes %s given %d jobs", ", ".join(verdict.feed + verdict.restart), queued)
        return verdict
