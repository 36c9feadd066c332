"""Composition root of the node selector: build(settings) -> app; nothing built at import."""

from __future__ import annotations

import asyncio
import logging
import sys

from ringrift_contracts import access
from ringrift_contracts.membership import membership_cache
from ringrift_contracts.skipped import reported_to_state
from ringrift_nodes.adapters.quarantine import QuarantineStore
from ringrift_nodes.adapters.reservations import ReservationStore
from ringrift_nodes.adapters.views import node_view
from ringrift_nodes.api.servicer import NodeSelectorServicer
from ringrift_nodes.domain.view import PlacementView
from ringrift_runtime.aio import cancel_and_wait
from ringrift_runtime.cluster.cache import ChangeKind
from ringrift_runtime.errors import RingriftError
from ringrift_runtime.grpc.client import ChannelFactory
from ringrift_runtime.grpc.contracts import SERVICE_BY_PROCESS
from ringrift_runtime.grpc.server import Bound, registration
from ringrift_runtime.process import run_service
from ringrift_runtime.security.context import Security
from ringrift_runtime.security.identity import Kind
from ringrift_settings import RingriftSettings

NAME = "nodes"
RESERVATION_REFRESH_SECONDS = 2.0
log = logging.getLogger("ringrift.nodes")


class NodesApp:
    name = NAME

    def __init__(self, settings: RingriftSettings) -> None:
        self.members = membership_cache(settings.etcd)
        self.view = PlacementView(settings.nodes)
        self._changes = self.members.subscribe()
        self._follower: asyncio.Task | None = None
        self._refresher: asyncio.Task | None = None
        self.security = Security.of(settings)
        self.access = access  # who may call what (ringrift_contracts.access)
        self.security.require(Kind.SERVICE, NAME)
        self._state_channel = ChannelFactory.of(settings, self.security).service(settings.endpoints, "state")
        self.reservations = ReservationStore(self._state_channel, reported_to_state(self._state_channel, NAME))
        self.quarantines = QuarantineStore(settings.etcd, self._state_channel)
        servicer = NodeSelectorServicer(self.view, self.members, self.reservations, self.quarantines)
        self.registrations = [registration(SERVICE_BY_PROCESS[NAME], servicer)]

    async def _load_reservations(self) -> None:
        try:
            self.view.reservations, _ = await self.reservations.load()
        except RingriftError as exc:
            log.warning("reservations not refreshed: %s", exc)

    async def _refresh_reservations(self) -> None:
        """Reservations made through other replicas show up within a refresh interval."""
        while True:
            await asyncio.sleep(RESERVATION_REFRESH_SECONDS)
            await self._load_reservations()

    async def _follow(self) -> None:
        while True:
            change = await self._changes.get()
            if change.kind == ChangeKind.LEFT:
                self.view.remove(change.name)
            else:
                self.view.upsert(node_view(change.value))

    async def start(self, bound: Bound) -> None:
        bound.registry.register(self.reservations.skipped.collector())
        self._follower = asyncio.create_task(self._follow(), name="membership-follower")
        await self._load_reservations()  # before the first answer: a restart must not forget them
        self._refresher = asyncio.create_task(self._refresh_reservations(), name="reservations")
        await self.members.start(wait=False)
        await self.members.wait_ready()  # NOT_SERVING until the first listing

    async def stop(self) -> None:
        await self.members.stop()
        await cancel_and_wait(self._follower)
        await cancel_and_wait(self._refresher)
        await self._state_channel.close()


def build(settings: RingriftSettings) -> NodesApp:
    return NodesApp(settings)


def main() -> None:
    sys.exit(run_service(NAME, build, RingriftSettings))
