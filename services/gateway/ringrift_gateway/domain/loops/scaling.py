"""AutoScaling (BEHAVIOUR.md, Background loops): pending work per active node above the
threshold adds nodes through a provider plugin; nodes the provider manages that idle long
enough are removed, never below the minimum; one action per cooldown."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from ringrift_gateway.domain.ports import Membership
from ringrift_settings import GatewaySettings

log = logging.getLogger("ringrift.gateway.scaling")


@dataclass(frozen=True)
class ScalingRules:
    min_nodes: int
    max_nodes: int
    pending_per_node: float  # more pending jobs per active node than this: add nodes
    max_add: int
    idle_seconds: float  # a node the provider manages, idle this long: remove it
    cooldown_seconds: float

    @classmethod
    def of(cls, settings: GatewaySettings) -> ScalingRules:
        return cls(
            min_nodes=settings.autoscaling_min_nodes,
            max_nodes=settings.autoscaling_max_nodes,
            pending_per_node=settings.autoscaling_pending_per_node,
            max_add=settings.autoscaling_max_add,
            idle_seconds=settings.autoscaling_idle_seconds,
            cooldown_seconds=settings.autoscaling_cooldown_seconds,
        )


@dataclass
class ScalingDecision:
    add: int = 0
    remove: list[str] = field(default_factory=list)
    reason: str = ""


def decide_scaling(rules: ScalingRules, pending: int, nodes: int, idle_managed: list[str]) -> ScalingDecision:
    """Pending work per active node above the threshold adds min(needed, max_add) nodes (never
    above the maximum); otherwise nodes the provider manages that have idled long enough
    are removed, never below the minimum."""
    per_node = pending / nodes if nodes else (float("inf") if pending else 0.0)
    if per_node > rules.pending_per_node:  # short of capacity: add, and remove nothing
        needed = max(1, math.ceil(pending / rules.pending_per_node) - nodes)
        add = max(0, min(needed, rules.max_add, rules.max_nodes - nodes))
        return ScalingDecision(
            add=add,
            reason=f"{pending} pending jobs on {nodes} nodes"
            + ("" if add else f"; already at the maximum of {rules.max_nodes}"),
        )
    removable = max(0, nodes - rules.min_nodes)
    remove = sorted(idle_managed)[:removable]
    if remove:
        return ScalingDecision(remove=remove, reason=f"idle for {rules.idle_seconds:.0f} s or more")
    return ScalingDecision(reason="no change needed")


class ScalingProvider(Protocol):
    name: str

    def manages(self, node_id: str) -> bool: ...

    async def add(self, count: int) -> list[str]: ...

    async def remove(self, node_id: str) -> None: ...


class PendingJobs(Protocol):
    async def pending_jobs(self) -> int: ...


class JobsByNode(Protocol):
    async def active_jobs_by_node(self, kind: str = "") -> dict[str, int]: ...


class AutoScaling:
    def __init__(
        self,
        pending: PendingJobs,
        jobs: JobsByNode,
        members: Membership,
        provider: ScalingProvider | None,
        rules: ScalingRules,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pending = pending
        self._jobs = jobs
        self._members = members
        self._provider = provider
        self._rules = rules
        self._clock = clock
        self._busy_at: dict[str, float] = {}
        self._acted_at = float("-inf")
        self.last = ScalingDecision()

    async def __call__(self, epoch: int) -> ScalingDecision:
        now = self._clock()
        members = {n: m for n, m in self._members.values().items() if not (m.draining or m.quarantined)}
        jobs = await self._jobs.active_jobs_by_node()
        for node_id in members:
            if jobs.get(node_id, 0) or node_id not in self._busy_at:
                self._busy_at[node_id] = now  # first sight counts as busy: idleness is measured from here
        idle = [
            n
            for n in members
            if self._provider is not None
            and self._provider.manages(n)
            and now - self._busy_at[n] >= self._rules.idle_seconds
        ]
        decision = decide_scaling(self._rules, await self._pending.pending_jobs(), len(members), idle)
        self.last = decision
        if not (decision.add or decision.remove):
            return decision
        if now - self._acted_at < self._rules.cooldown_seconds:
            decision.reason += " (cooling down)"
            return decision
        if self._provider is None:
            log.info(
                "autoscaling would %s (%s) but no provider is configured",
                f"add {decision.add} nodes" if decision.add else f"remove {', '.join(decision.remove)}",
                decision.reason,
            )
            return decision
        self._acted_at = now
        if decision.add:
            started = await self._provider.add(decision.add)
            log.info(
                "autoscaling added %s through %s: %s",
                ", ".join(started) or "nothing",
                self._provider.name,
                decision.reason,
            )
        for node_id in decision.remove:
            await self._provider.remove(node_id)
            self._busy_at.pop(node_id, None)
            log.info("autoscaling removed %s through %s: %s", node_id, self._provider.name, decision.reason)
        return decision
