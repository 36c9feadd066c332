"""DataSync (BEHAVIOUR.md, Background loops): for every config, its games to the
trainer(s) and its best model to every player. Plans move only what is missing, so a
round with nothing to do is cheap; one config's failure does not stop the others."""

from __future__ import annotations

import logging
from typing import Protocol

from ringrift_runtime.errors import DependencyUnavailable, NotLeader, RingriftError, StaleEpoch

log = logging.getLogger("ringrift.gateway.data_sync")


class SyncMoves(Protocol):
    async def move(self, goal: str, config_key: str, epoch: int) -> tuple[int, int]: ...


class BestModels(Protocol):
    async def best_model_paths(self) -> dict[str, str]: ...


class DataSync:
    """For every config: its games to the trainer(s), its best model to every player.
    Plans move only what is missing, so a round with nothing to do is cheap."""

    def __init__(self, sync: SyncMoves, models: BestModels, configs: list[str]) -> None:
        self._sync = sync
        self._models = models
        self._configs = configs

    async def __call__(self, epoch: int) -> tuple[int, int]:
        best = await self._models.best_model_paths()
        done = failed = 0
        errors: list[str] = []
        for config in self._configs:
            goals = ["games"] + (["models"] if config in best else [])
            for goal in goals:
                try:
                    d, f = await self._sync.move(goal, config, epoch)
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
