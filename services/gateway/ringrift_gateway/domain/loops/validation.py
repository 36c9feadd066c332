"""Validation (BEHAVIOUR.md, Background loops): baseline gauntlets for promoted models
that have none, at most a few new ones a round; results are stored as matches."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

log = logging.getLogger("ringrift.gateway.validation")


class Model(Protocol):
    model_id: str
    config_key: str
    generation: int


class Registry(Protocol):
    """StateService: promoted models and the matches they played."""

    async def promoted_models(self) -> Sequence[Any]: ...

    async def baseline_games(self, config_key: str) -> dict[str, dict[str, int]]: ...

    async def record_matches(
        self, config_key: str, model_id: str, opponents: dict[str, Any], key: str, epoch: int
    ) -> int: ...


class Gauntlets(Protocol):
    """JobService: validation gauntlets and what they returned."""

    async def submit_validation(self, model: Any, baselines: list[str], games: int, key: str) -> str: ...

    async def job_outcome(self, job_id: str) -> tuple[str, dict[str, Any]]: ...


class Validation:
    """Promoted models without ``games`` recorded games against each baseline get a
    validation gauntlet (at most ``per_cycle`` new ones a round); a finished gauntlet's
    results are stored as matches, which is what makes the model validated (a model
    promoted by the training gauntlet already has them). Submissions are idempotent per
    model, so a new leader picks up the jobs its predecessor queued."""

    def __init__(self, registry: Registry, jobs: Gauntlets, baselines: list[str], games: int, per_cycle: int) -> None:
        self._registry = registry
        self._jobs = jobs
        self._baselines = baselines
        self._games = games
        self._per_cycle = per_cycle
        self.failed: set[str] = set()  # models whose validation job failed (not retried this term)

    async def __call__(self, epoch: int) -> dict[str, str]:
        models = await self._registry.promoted_models()
        counts: dict[str, dict[str, dict[str, int]]] = {}
        outcome: dict[str, str] = {}
        queued = 0
        for model in sorted(models, key=lambda m: (m.config_key, m.generation)):
            if model.model_id in self.failed:
                continue
            if model.config_key not in counts:
                counts[model.config_key] = await self._registry.baseline_games(model.config_key)
            played = counts[model.config_key].get(model.model_id, {})
            if all(played.get(b, 0) >= self._games for b in self._baselines):
                continue
            if queued >= self._per_cycle:
                outcome[model.model_id] = "waiting"
                continue
            job_id = await self._jobs.submit_validation(
                model, self._baselines, self._games, f"validation/{model.model_id}"
            )
            state, result = await self._jobs.job_outcome(job_id)
            if state == "SUCCEEDED":
                opponents = {k: v for k, v in (result.get("opponents") or {}).items() if k in self._baselines}
                await self._registry.record_matches(
                    model.config_key, model.model_id, opponents, f"validation/{job_id}", epoch
                )
                outcome[model.model_id] = "validated"
            elif state in ("FAILED", "CANCELLED", "LOST"):
                self.failed.add(model.model_id)
                outcome[model.model_id] = "failed"
                log.warning("validation of %s failed (job %s)", model.model_id, job_id)
            else:
                queued += 1
                outcome[model.model_id] = "queued"
        return outcome
