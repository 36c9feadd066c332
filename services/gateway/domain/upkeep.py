"""The leader's upkeep loops (BEHAVIOUR.md, Background loops): IdleDetection, DataSync,
Validation and AutoScaling. Each is one fenced round called by the LoopManager with the
leader's epoch; what they remember between rounds (idle timers, cooldowns) is soft state
a new leader rebuilds within one idle period."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

from ringrift_gateway.domain.pipeline import selfplay_members
from ringrift_runtime.errors import DependencyUnavailable, NotLeader, RingriftError, StaleEpoch

log = logging.getLogger("ringrift.gateway.upkeep")
BASELINES = ("random", "heuristic")


# --------------------------------------------------------------------------- idle nodes


@dataclass
class IdleRules:
    idle_seconds: float = 15.0  # no jobs (or GPU < 10 %) this long: give it work now
    idle_gpu_percent: float = 10.0
    zombie_seconds: float = 600.0  # GPU < 5 % with jobs this long: restart its self-play jobs
    zombie_gpu_percent: float = 5.0
    cooldown_seconds: float = 120.0  # per node, between two actions


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


class IdleClient(Protocol):
    async def active_jobs_by_node(self, kind: str = "") -> dict[str, int]: ...

    async def active_job_ids(self, node_id: str, kind: str) -> list[str]: ...

    async def cancel(self, job_ids: list[str], reason: str) -> int: ...


class IdleDetection:
    def __init__(self, client: IdleClient, members, feed: Callable, rules: IdleRules,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._client = client
        self._members = members  # PrefixCache[NodeInfo]
        self._feed = feed  # async (epoch, node ids) -> jobs queued (PipelineLoops.populate_queue)
        self._tracker = IdleTracker(rules)
        self._clock = clock

    async def __call__(self, epoch: int) -> IdleVerdict:
        nodes = {  # has a GPU (a declared one the machine lacks reports no utilisation), GPU %
            node_id: (bool(node.detected.gpu.count), node.metrics.gpu_utilization_percent)
            for node_id, node in selfplay_members(self._members).items()
        }
        jobs = await self._client.active_jobs_by_node()
        verdict = self._tracker.observe(nodes, jobs, self._clock())
        for node_id in verdict.restart:
            ids = await self._client.active_job_ids(node_id, "selfplay")
            stopped = await self._client.cancel(ids, "zombie: GPU idle with jobs running; the queue refills the node")
            log.warning("node %s looks like a zombie (GPU idle with jobs): cancelled %d self-play jobs", node_id, stopped)
        if verdict.feed or verdict.restart:
            queued = await self._feed(epoch, verdict.feed + verdict.restart)
            log.info("idle nodes %s given %d jobs", ", ".join(verdict.feed + verdict.restart), queued)
        return verdict


# --------------------------------------------------------------------------- data sync


class SyncClient(Protocol):
    async def move(self, goal: str, config_key: str, epoch: int) -> tuple[int, int]: ...

    async def best_model_paths(self) -> dict[str, str]: ...


class DataSync:
    """For every config: its games to the trainer(s), its best model to every player.
    Plans move only what is missing, so a round with nothing to do is cheap."""

    def __init__(self, client: SyncClient, configs: list[str]) -> None:
        self._client = client
        self._configs = configs

    async def __call__(self, epoch: int) -> tuple[int, int]:
        best = await self._client.best_model_paths()
        done = failed = 0
        errors = []
        for config in self._configs:
            goals = ["games"] + (["models"] if config in best else [])
            for goal in goals:
                try:
                    d, f = await self._client.move(goal, config, epoch)
                except (StaleEpoch, NotLeader):
                    raise
                except RingriftError as exc:  # one config's failure does not stop the others
                    errors.append(f"{goal} of {config}: {exc}")
                    continue
                done, failed = done + d, failed + f
        if errors:
            raise DependencyUnavailable("data sync incomplete: " + "; ".join(errors))
        if done or failed:
            log.info("data sync: %d transfers done, %d failed", done, failed)
        return done, failed


# --------------------------------------------------------------------------- validation


class ValidationClient(Protocol):
    async def promoted_models(self) -> list: ...

    async def baseline_games(self, config_key: str) -> dict[str, dict[str, int]]: ...

    async def submit_validation(self, model, games: int, key: str) -> str: ...

    async def job_outcome(self, job_id: str) -> tuple[str, dict]: ...

    async def record_matches(self, config_key: str, model_id: str, opponents: dict, key: str, epoch: int) -> int: ...


class Validation:
    """Promoted models without ``games`` recorded games against each baseline get a
    validation gauntlet (at most ``per_cycle`` new ones a round); a finished gauntlet's
    results are stored as matches, which is what makes the model validated (a model
    promoted by the training gauntlet already has them). Submissions are idempotent per
    model, so a new leader picks up the jobs its predecessor queued."""

    def __init__(self, client: ValidationClient, games: int = 50, per_cycle: int = 3) -> None:
        self._client = client
        self._games = games
        self._per_cycle = per_cycle
        self.failed: set[str] = set()  # models whose validation job failed (not retried this term)

    async def __call__(self, epoch: int) -> dict[str, str]:
        models = await self._client.promoted_models()
        counts: dict[str, dict[str, dict[str, int]]] = {}
        outcome: dict[str, str] = {}
        queued = 0
        for model in sorted(models, key=lambda m: (m.config_key, m.generation)):
            if model.model_id in self.failed:
                continue
            if model.config_key not in counts:
                counts[model.config_key] = await self._client.baseline_games(model.config_key)
            played = counts[model.config_key].get(model.model_id, {})
            if all(played.get(b, 0) >= self._games for b in BASELINES):
                continue
            if queued >= self._per_cycle:
                outcome[model.model_id] = "waiting"
                continue
            job_id = await self._client.submit_validation(model, self._games, f"validation/{model.model_id}")
            state, result = await self._client.job_outcome(job_id)
            if state == "SUCCEEDED":
                opponents = {k: v for k, v in (result.get("opponents") or {}).items() if k in BASELINES}
                await self._client.record_matches(model.config_key, model.model_id, opponents,
                                                  f"validation/{job_id}", epoch)
                outcome[model.model_id] = "validated"
            elif state in ("FAILED", "CANCELLED", "LOST"):
                self.failed.add(model.model_id)
                outcome[model.model_id] = "failed"
                log.warning("validation of %s failed (job %s)", model.model_id, job_id)
            else:
                queued += 1
                outcome[model.model_id] = "queued"
        return outcome


# --------------------------------------------------------------------------- autoscaling


@dataclass
class ScalingRules:
    min_nodes: int = 1
    max_nodes: int = 8
    pending_per_node: float = 10.0  # more pending jobs per active node than this: add nodes
    max_add: int = 3
    idle_seconds: float = 3600.0  # a node the provider manages, idle this long: remove it
    cooldown_seconds: float = 600.0


@dataclass
class ScalingDecision:
    add: int = 0
    remove: list[str] = field(default_factory=list)
    reason: str = ""


def decide_scaling(rules: ScalingRules, pending: int, nodes: int, idle_managed: list[str]) -> ScalingDecision:
    """Pending work per active node above the threshold adds min(needed, 3) nodes (never
    above the maximum); otherwise nodes the provider manages that have idled long enough
    are removed, never below the minimum."""
    per_node = pending / nodes if nodes else (float("inf") if pending else 0.0)
    if per_node > rules.pending_per_node:  # short of capacity: add, and remove nothing
        needed = max(1, math.ceil(pending / rules.pending_per_node) - nodes)
        add = max(0, min(needed, rules.max_add, rules.max_nodes - nodes))
        return ScalingDecision(add=add, reason=f"{pending} pending jobs on {nodes} nodes"
                               + ("" if add else f"; already at the maximum of {rules.max_nodes}"))
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


class ScalingClient(Protocol):
    async def pending_jobs(self) -> int: ...

    async def active_jobs_by_node(self, kind: str = "") -> dict[str, int]: ...


class AutoScaling:
    def __init__(self, client: ScalingClient, members, provider: ScalingProvider | None, rules: ScalingRules,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._client = client
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
        jobs = await self._client.active_jobs_by_node()
        for node_id in members:
            if jobs.get(node_id, 0) or node_id not in self._busy_at:
                self._busy_at[node_id] = now  # first sight counts as busy: idleness is measured from here
        idle = [n for n in members if self._provider is not None and self._provider.manages(n)
                and now - self._busy_at[n] >= self._rules.idle_seconds]
        decision = decide_scaling(self._rules, await self._client.pending_jobs(), len(members), idle)
        self.last = decision
        if not (decision.add or decision.remove):
            return decision
        if now - self._acted_at < self._rules.cooldown_seconds:
            decision.reason += " (cooling down)"
            return decision
        if self._provider is None:
            log.info("autoscaling would %s (%s) but no provider is configured",
                     f"add {decision.add} nodes" if decision.add else f"remove {', '.join(decision.remove)}",
                     decision.reason)
            return decision
        self._acted_at = now
        if decision.add:
            started = await self._provider.add(decision.add)
            log.info("autoscaling added %s through %s: %s", ", ".join(started) or "nothing", self._provider.name,
                     decision.reason)
        for node_id in decision.remove:
            await self._provider.remove(node_id)
            self._busy_at.pop(node_id, None)
            log.info("autoscaling removed %s through %s: %s", node_id, self._provider.name, decision.reason)
        return decision
