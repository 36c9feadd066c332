"""TrainingTrigger (BEHAVIOUR.md, Background loops): ask TrainingCoordinator to train
every config whose readiness allows it, and carry out operator requests (intents any
gateway replica stored)."""

from __future__ import annotations

import json
import logging
from typing import Any, Protocol

from ringrift_gateway.domain.ports import VersionedValue

log = logging.getLogger("ringrift.gateway.training")

INTENTS = "intents"  # written by any gateway replica (TriggerTraining on the facade)


def training_intent_key(config_key: str) -> str:
    return f"train/{config_key}"


class Intents(Protocol):
    async def load_state(self, namespace: str, key: str) -> VersionedValue: ...

    async def persist_state(self, namespace: str, key: str, value: bytes, expected_version: int, epoch: int) -> int: ...


class Trainer(Protocol):
    async def trigger_training(self, config_key: str, epoch: int, force: bool = False) -> Any: ...


class TrainingTrigger:
    def __init__(self, intents: Intents, trainer: Trainer, configs: list[str]) -> None:
        self._intents = intents
        self._trainer = trainer
        self._configs = configs

    async def __call__(self, epoch: int) -> None:
        """Every config, with its operator request if there is one. A forced request stays
        until its run has started (a run in progress makes it wait); an unforced one is
        what this loop does anyway."""
        for config in self._configs:
            key = training_intent_key(config)
            intent = await self._intents.load_state(INTENTS, key)
            requested = json.loads(intent.value) if intent.found and intent.value else None
            forced = bool(requested and requested.get("force"))
            reply = await self._trainer.trigger_training(config, epoch, forced)
            if reply.started:
                suffix = " (requested by an operator)" if requested else ""
                log.info("training started for %s: run %s%s", config, reply.run.run_id, suffix)
            if requested and (reply.started or not forced):
                await self._intents.persist_state(INTENTS, key, b"", intent.version, epoch)
