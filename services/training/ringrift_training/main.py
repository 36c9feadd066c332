"""Composition root of the training coordinator: build(settings) -> app; nothing built at import."""

from __future__ import annotations

import sys

from ringrift_contracts import access
from ringrift_contracts.skipped import reported_to_state
from ringrift_runtime.grpc.client import ChannelFactory
from ringrift_runtime.grpc.contracts import SERVICE_BY_PROCESS
from ringrift_runtime.grpc.server import Bound, registration
from ringrift_runtime.process import run_service
from ringrift_runtime.security.context import Security
from ringrift_runtime.security.identity import Kind
from ringrift_settings import RingriftSettings
from ringrift_training.adapters.clients import Jobs, Nodes, Scheduler, State, Sync
from ringrift_training.adapters.metrics import RunCollector
from ringrift_training.api.servicer import TrainingCoordinatorServicer
from ringrift_training.domain.coordinator import Coordinator
from ringrift_training.domain.stages import Ports

NAME = "training"


class TrainingApp:
    name = NAME

    def __init__(self, settings: RingriftSettings) -> None:
        self.security = Security.of(settings)
        self.access = access  # who may call what (ringrift_contracts.access)
        self.security.require(Kind.SERVICE, NAME)
        factory = ChannelFactory.of(settings, self.security)
        endpoints = settings.endpoints
        self._channels = {
            name: factory.service(endpoints, name) for name in ("state", "jobs", "nodes", "sync", "selfplay")
        }
        ports = Ports(
            state=State(self._channels["state"]),
            jobs=Jobs(self._channels["jobs"]),
            nodes=Nodes(self._channels["nodes"]),
            sync=Sync(self._channels["sync"]),
            scheduler=Scheduler(self._channels["selfplay"]),
        )
        skipped = reported_to_state(self._channels["state"], "training")
        self.coordinator = Coordinator(settings.training, settings.pipeline, ports, skipped=skipped)
        self.registrations = [registration(SERVICE_BY_PROCESS[NAME], TrainingCoordinatorServicer(self.coordinator))]

    async def start(self, bound: Bound) -> None:
        bound.registry.register(RunCollector(lambda: self.coordinator.runs))
        bound.registry.register(self.coordinator.skipped.collector())

    async def stop(self) -> None:
        await self.coordinator.stop()
        for channel in self._channels.values():
            await channel.close()


def build(settings: RingriftSettings) -> TrainingApp:
    return TrainingApp(settings)


def main() -> None:
    sys.exit(run_service(NAME, build, RingriftSettings))
