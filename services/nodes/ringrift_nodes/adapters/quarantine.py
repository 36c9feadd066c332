"""Quarantines: the etcd key every membership view lays over the member (under a lease
that ends it) and the event that tells the cluster why."""

from __future__ import annotations

import grpc

from ringrift.common.v1 import common_pb2
from ringrift.state.v1 import state_pb2, state_pb2_grpc
from ringrift_contracts.membership import Quarantine, lift_quarantine, quarantine_node
from ringrift_runtime.cluster.etcd import TRANSIENT_ERRORS
from ringrift_runtime.errors import DependencyUnavailable
from ringrift_runtime.grpc.calls import call
from ringrift_runtime.settings import EtcdSettings

SOURCE = "nodes"


class QuarantineStore:
    def __init__(self, etcd: EtcdSettings, state_channel: grpc.aio.Channel) -> None:
        self._etcd = etcd
        self._state = state_pb2_grpc.StateServiceStub(state_channel)

    async def _publish(self, event_type: int, node_id: str, attributes: dict[str, str]) -> None:
        event = common_pb2.Event(type=event_type, source=SOURCE, subject=node_id, attributes=attributes)
        await call(self._state.PublishEvent(state_pb2.PublishEventRequest(event=event)))

    async def quarantine(self, node_id: str, reason: str, seconds: int, by: str) -> Quarantine:
        try:
            record = await quarantine_node(self._etcd, node_id, reason, seconds, by)
        except TRANSIENT_ERRORS as exc:
            raise DependencyUnavailable(f"etcd did not take the quarantine: {type(exc).__name__}") from None
        attributes = {"reason": reason[:200], "until": f"{record.until:.0f}", "by": by}
        await self._publish(common_pb2.EVENT_TYPE_NODE_QUARANTINED, node_id, attributes)
        return record

    async def lift(self, node_id: str, by: str) -> bool:
        try:
            lifted = await lift_quarantine(self._etcd, node_id)
        except TRANSIENT_ERRORS as exc:
            raise DependencyUnavailable(f"etcd did not lift the quarantine: {type(exc).__name__}") from None
        if lifted:
            await self._publish(common_pb2.EVENT_TYPE_NODE_QUARANTINE_LIFTED, node_id, {"by": by})
        return lifted
