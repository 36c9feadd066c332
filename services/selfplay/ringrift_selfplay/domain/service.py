"""SelfplayScheduler's use cases over a short-lived snapshot of StateService records."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ringrift_contracts.ids import parse_config_key
from ringrift_runtime.errors import NotFound
from ringrift_selfplay.domain.priority import (
    ConfigState,
    NodeFacts,
    Pick,
    Terms,
    compute_terms,
    curriculum_weight,
    elo_boost,
    pick,
)
from ringrift_selfplay.domain.targets import NodeLoad, Target, hybrid_targets, target_jobs
from ringrift_settings import PipelineSettings, SelfplaySettings, TrainingSettings

SNAPSHOT_SECONDS = 2.0


@dataclass
class Snapshot:
    taken: float
    states: list[ConfigState]


class SchedulerState(Protocol):
    """StateService as the scheduler reads it; evaluation outcomes are stored as events."""

    async def config_stats(self) -> dict[str, dict[str, Any]]: ...

    async def ratings(self) -> dict[str, dict[str, float]]: ...

    async def generations(self) -> dict[str, dict[str, int]]: ...

    async def evaluations(self) -> dict[str, list[tuple[float, float, bool]]]: ...

    async def record_outcome(
        self, config_key: str, win_rate: float, promoted: bool, job_id: str, epoch: int
    ) -> None: ...

    async def running_configs(self, node_id: str) -> set[str]: ...


class Scheduler:
    def __init__(
        self,
        pipeline: PipelineSettings,
        selfplay: SelfplaySettings,
        training: TrainingSettings,
        state: SchedulerState,
        nodes: Callable[[str], NodeLoad | None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._pipeline, self._selfplay, self._training = pipeline, selfplay, training
        self._state = state
        self._nodes = nodes  # node id -> NodeLoad from the membership view, None if not a member
        self._clock = clock
        self._snapshot: Snapshot | None = None
        self._lock = asyncio.Lock()

    async def states(self, fresh: bool = False) -> list[ConfigState]:
        async with self._lock:  # one load serves every caller waiting for it
            if fresh or self._snapshot is None or time.monotonic() - self._snapshot.taken > SNAPSHOT_SECONDS:
                self._snapshot = Snapshot(time.monotonic(), await self._load())
            return self._snapshot.states

    async def _load(self) -> list[ConfigState]:
        stats, ratings, generations, evaluations = await asyncio.gather(
            self._state.config_stats(), self._state.ratings(), self._state.generations(), self._state.evaluations()
        )
        states = []
        for key in self._pipeline.configs:
            parsed = parse_config_key(key)
            s = stats.get(key, {})
            models = generations.get(key, {})
            rated = {m: elo for m, elo in ratings.get(key, {}).items() if m in models}
            by_generation = tuple(elo for _, elo in sorted((models[m], elo) for m, elo in rated.items()))
            states.append(
                ConfigState(
                    config_key=key,
                    board=parsed.board,
                    players=parsed.players,
                    games_total=s.get("games_total", 0),
                    games_since_training=s.get("games_since_training", 0),
                    training_running=s.get("started", 0) > s.get("completed", 0),
                    last_training_completed=s.get("completed", 0.0),
                    best_elo=max(rated.values()) if rated else None,
                    elo_by_generation=by_generation,
                    evaluations=tuple(evaluations.get(key, [])),
                    cpu_seconds_per_game=s.get("cpu_seconds_per_game", 0.0),
                )
            )
        return states

    def _node(self, node_id: str) -> NodeLoad:
        node = self._nodes(node_id)
        if node is None:
            raise NotFound(f"node {node_id} is not a member")
        return node

    async def terms(self, node_id: str) -> list[Terms]:
        facts = None
        if node_id:
            node = self._node(node_id)
            running = await self._state.running_configs(node_id)
            facts = NodeFacts(node_id, node.gpu_count > 0, node.gpu_memory_mb / 1024, frozenset(running))
        return compute_terms(await self.states(), facts, self._clock(), self._selfplay, self._training, self._pipeline)

    async def pick(self, node_id: str, seed: int) -> Pick:
        seed = seed or random.SystemRandom().getrandbits(63) or 1
        return pick(await self.terms(node_id), seed, self._selfplay)

    async def explain(self, node_id: str) -> list[Terms]:
        terms = await self.terms(node_id)
        pick(terms, 1, self._selfplay)  # fills in the probabilities (the floor's pool as of this draw)
        return terms

    async def elo_boost(self, config_key: str) -> tuple[int, float | None]:
        state = next((s for s in await self.states() if s.config_key == config_key), None)
        if state is None:
            raise NotFound(
                f"{config_key} is not one of the configs this cluster trains ({', '.join(self._pipeline.configs)})"
            )
        return elo_boost(state.best_elo, state.board in self._pipeline.large_boards, state.players), state.best_elo

    def target(self, node_id: str) -> Target:
        return target_jobs(
            self._node(node_id), self._pipeline.profile == "production", self._selfplay.backpressure_factor
        )

    def hybrid(self, node_id: str) -> tuple[int, int]:
        node = self._node(node_id)
        return hybrid_targets(node, self.target(node_id).jobs)

    async def record_outcome(
        self, config_key: str, win_rate: float, promoted: bool, job_id: str, epoch: int
    ) -> tuple[float, int]:
        """Store an evaluation's outcome; (the config's curriculum weight, promotion
        failures in the last 24 h) after it."""
        await self._state.record_outcome(config_key, win_rate, promoted, job_id, epoch)
        state = next((s for s in await self.states(fresh=True) if s.config_key == config_key), None)
        evaluations = state.evaluations if state else ()
        now = self._clock()
        failures = sum(1 for t, _, promoted_ in evaluations if not promoted_ and now - t < 86400)
        return curriculum_weight(evaluations), failures
