"""The RECORD_SKIPPED event a process publishes for a malformed record it skipped
(ringrift_runtime.skipped), once per record: its idempotency key names the record, so
a second replica or a restarted process skipping the same record reports nothing new."""

from __future__ import annotations

import hashlib

import grpc

from ringrift.common.v1 import common_pb2
from ringrift.state.v1 import state_pb2, state_pb2_grpc
from ringrift_runtime.grpc.calls import call
from ringrift_runtime.skipped import Report, SkippedRecords


def skipped_event(component: str, kind: str, name: str, reason: str) -> common_pb2.Event:
    digest = hashlib.sha256(f"{component}\0{kind}\0{name}".encode()).hexdigest()[:32]
    return common_pb2.Event(
        type=common_pb2.EVENT_TYPE_RECORD_SKIPPED,
        source=component,
        subject=name,
        attributes={"kind": kind, "reason": reason, "component": component},
        idempotency_key=f"record-skipped/{digest}",
    )


def state_report(channel: grpc.aio.Channel, component: str) -> Report:
    """Report skipped records to StateService over ``channel``."""
    stub = state_pb2_grpc.StateServiceStub(channel)

    async def report(kind: str, name: str, reason: str) -> None:
        event = skipped_event(component, kind, name, reason)
        await call(stub.PublishEvent(state_pb2.PublishEventRequest(event=event), timeout=5))

    return report


def reported_to_state(channel: grpc.aio.Channel, component: str) -> SkippedRecords:
    return SkippedRecords(component, state_report(channel, component))
