"""QueuePopulator (BEHAVIOUR.md, Background loops): keep every self-play node at the
target SelfplayScheduler gives it, at most a cap of new jobs per node a round, each job's
config drawn by the scheduler for that node and played with the config's best model."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Any, Protocol

from ringrift_contracts.ids import parse_config_key
from ringrift_contracts.nodes import takes_selfplay
from ringrift_gateway.domain.ports import Membership

log = logging.getLogger("ringrift.gateway.queue")


class Scheduler(Protocol):
    async def target(self, node_id: str) -> int: ...

    async def pick(self, node_id: str, seed: int) -> str: ...


class SelfplayJobs(Protocol):
    async def active_jobs_by_node(self, kind: str = "") -> dict[str, int]: ...

    async def submit_selfplay(self, orders: list[tuple[str, str, dict[str, Any]]]) -> int: ...


class BestModels(Protocol):
    async def best_model_paths(self) -> dict[str, str]: ...


class QueuePopulator:
    def __init__(
        self,
        scheduler: Scheduler,
        jobs: SelfplayJobs,
        models: BestModels,
        members: Membership,
        games_per_job: int,
        temperature: Callable[[int], float],
        max_top_up: int,
        rng: random.Random | None = None,
    ) -> None:
        """``temperature`` gives the self-play temperature for a player count
        (``SelfplaySettings.temperature_for``)."""
        self._scheduler = scheduler
        self._jobs = jobs
        self._models = models
        self._members = members
        self._games_per_job = games_per_job
        self._temperature = temperature
        self._max_top_up = max_top_up
        self._rng = rng or random.Random()

    async def __call__(self, epoch: int, only: list[str] | None = None) -> int:
        """Top every self-play node (or the ``only`` ones) up to its target; returns the
        jobs queued."""
        active = await self._jobs.active_jobs_by_node("selfplay")
        models = await self._models.best_model_paths()
        orders: list[tuple[str, str, dict[str, Any]]] = []
        for node_id in sorted(n for n, node in self._members.values().items() if takes_selfplay(node)):
            if only is not None and node_id not in only:
                continue
            target = await self._scheduler.target(node_id)
            for _ in range(max(0, min(target - active.get(node_id, 0), self._max_top_up))):
                config = await self._scheduler.pick(node_id, self._rng.getrandbits(62) or 1)
                if not config:
                    break
                temperature = self._temperature(parse_config_key(config).players)
                params: dict[str, Any] = {"games": self._games_per_job, "temperature": temperature}
                if config in models:
                    params["model"] = models[config]
                orders.append((node_id, config, params))
        submitted = await self._jobs.submit_selfplay(orders)
        if submitted:
            log.info("queued %d self-play jobs", submitted)
        return submitted
