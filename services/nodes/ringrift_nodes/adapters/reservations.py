"""Node reservations, kept in StateService's versioned state (namespace "nodes", key
"reservations") so that every NodeSelector replica and a restarted one see the same.
A malformed stored value or entry is skipped and reported (RECORD_SKIPPED); the next
reservation written replaces it."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable

import grpc

from ringrift.state.v1 import state_pb2, state_pb2_grpc
from ringrift_contracts.writes import compare_and_swap
from ringrift_nodes.domain.model import Reservation
from ringrift_runtime.errors import WrongState
from ringrift_runtime.grpc.calls import call
from ringrift_runtime.skipped import SkippedRecords

NAMESPACE, KEY = "nodes", "reservations"


class ReservationStore:
    def __init__(self, channel: grpc.aio.Channel, skipped: SkippedRecords | None = None) -> None:
        self._stub = state_pb2_grpc.StateServiceStub(channel)
        self.skipped = skipped or SkippedRecords("nodes")

    async def load(self) -> tuple[dict[str, Reservation], int]:
        reply = await call(self._stub.LoadState(state_pb2.LoadStateRequest(namespace=NAMESPACE, key=KEY)))
        if not reply.found:
            return {}, 0
        try:
            raw = json.loads(reply.value)
            if not isinstance(raw, dict):
                raise ValueError("not an object")
        except ValueError as exc:
            name = f"{NAMESPACE}/{KEY} version {reply.version}"
            await self.skipped.skip("reservations", name, f"not a JSON object of reservations: {exc}")
            return {}, reply.version
        found: dict[str, Reservation] = {}
        for node, values in raw.items():
            reservation = _reservation(node, values)
            if reservation is None:
                await self.skipped.skip("reservation", node, f"not a reservation: {str(values)[:80]!r}")
            else:
                found[node] = reservation
        return found, reply.version

    async def _save(self, reservations: dict[str, Reservation], version: int, epoch: int) -> None:
        value = json.dumps(
            {n: {"purpose": r.purpose, "holder": r.holder, "expires_at": r.expires_at} for n, r in reservations.items()}
        ).encode()
        request = state_pb2.PersistStateRequest(
            namespace=NAMESPACE, key=KEY, value=value, expected_version=version, epoch=epoch
        )
        await call(self._stub.PersistState(request))

    def _store(self, epoch: int) -> Callable[[dict[str, Reservation], int], Awaitable[dict[str, Reservation]]]:
        async def store(reservations: dict[str, Reservation], version: int) -> dict[str, Reservation]:
            await self._save(reservations, version, epoch)
            return reservations

        return store

    async def reserve(
        self, node_id: str, purpose: str, holder: str, ttl: float, epoch: int
    ) -> tuple[Reservation, dict[str, Reservation]]:
        now = time.time()

        def change(current: dict[str, Reservation]) -> dict[str, Reservation]:
            live = {n: r for n, r in current.items() if r.expires_at > now}
            existing = live.get(node_id)
            if existing is not None and existing.holder != holder:
                raise WrongState(
                    f"node {node_id} is reserved for {existing.purpose} by {existing.holder} "
                    f"for another {existing.expires_at - now:.0f}s"
                )
            live[node_id] = Reservation(node_id, purpose, holder, now + ttl)
            return live

        saved = await compare_and_swap(self.load, self._store(epoch), change, "node reservations")
        return saved[node_id], saved

    async def release(self, node_id: str, holder: str, epoch: int) -> tuple[bool, dict[str, Reservation]]:
        current, _ = await self.load()
        existing = current.get(node_id)
        if existing is None or existing.holder != holder:
            return False, current

        def change(current: dict[str, Reservation]) -> dict[str, Reservation]:
            held = current.get(node_id)
            return {n: r for n, r in current.items() if n != node_id or (held and held.holder != holder)}

        return True, await compare_and_swap(self.load, self._store(epoch), change, "node reservations")


def _reservation(node: str, values: object) -> Reservation | None:
    if not isinstance(values, dict) or set(values) != {"purpose", "holder", "expires_at"}:
        return None
    purpose, holder, expires_at = values["purpose"], values["holder"], values["expires_at"]
    if not (isinstance(purpose, str) and isinstance(holder, str)):
        return None
    if not isinstance(expires_at, int | float) or isinstance(expires_at, bool) or expires_at != expires_at:
        return None
    return Reservation(node, purpose, holder, float(expires_at))
