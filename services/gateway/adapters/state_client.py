"""The gateway's client of StateService."""

from __future__ import annotations

from ringrift.common.v1 import common_pb2
from ringrift.state.v1 import state_pb2, state_pb2_grpc
from ringrift_runtime.grpc.calls import call


class StateClient:
    def __init__(self, channel, source: str) -> None:
        self._stub = state_pb2_grpc.StateServiceStub(channel)
        self._source = source

    async def get_epoch(self) -> state_pb2.GetClusterEpochResponse:
        return await call(self._stub.GetClusterEpoch(state_pb2.GetClusterEpochRequest()))

    async def advance_epoch(self, epoch: int, leader_id: str) -> int:
        reply = await call(self._stub.AdvanceEpoch(state_pb2.AdvanceEpochRequest(epoch=epoch, leader_id=leader_id)))
        return reply.previous_epoch

    async def publish(
        self,
        event_type: int,
        subject: str,
        epoch: int,
        idempotency_key: str = "",
        attributes: dict[str, str] | None = None,
    ) -> common_pb2.Event:
        event = common_pb2.Event(
            type=event_type,
            source=self._source,
            subject=subject,
            epoch=epoch,
            idempotency_key=idempotency_key,
            attributes=attributes or {},
        )
        return (await call(self._stub.PublishEvent(state_pb2.PublishEventRequest(event=event)))).event

    async def list_events(self, after: int, types: list[int], limit: int = 1000) -> list[common_pb2.Event]:
        request = state_pb2.ListEventsRequest(
            after_sequence=after, filter=common_pb2.EventFilter(types=types), limit=limit
        )
        return list((await call(self._stub.ListEvents(request))).events)

    async def record_nodes(self, alive: list[common_pb2.NodeInfo], departed: list[str], epoch: int) -> None:
        request = state_pb2.RecordNodesRequest(alive=alive, departed_node_ids=departed, epoch=epoch)
        await call(self._stub.RecordNodes(request))

    async def load_state(self, namespace: str, key: str) -> state_pb2.LoadStateResponse:
        return await call(self._stub.LoadState(state_pb2.LoadStateRequest(namespace=namespace, key=key)))

    async def persist_state(self, namespace: str, key: str, value: bytes, expected_version: int, epoch: int) -> int:
        request = state_pb2.PersistStateRequest(
            namespace=namespace, key=key, value=value, expected_version=expected_version, epoch=epoch
        )
        return (await call(self._stub.PersistState(request))).version
