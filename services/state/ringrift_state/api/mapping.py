"""Proto <-> domain mapping for StateService, with request validation."""

from __future__ import annotations

import re

from ringrift.common.v1 import common_pb2
from ringrift.state.v1 import state_pb2
from ringrift_contracts.check import Check
from ringrift_runtime.grpc.times import to_timestamp
from ringrift_state.domain.model import EventFilter, NewEvent, StoredEvent

NAME_LIMIT = 256
MAX_ATTRIBUTES = 64
MAX_ATTRIBUTE_VALUE = 4096
MAX_STATE_VALUE_BYTES = 1024 * 1024
MAX_EVENT_PAGE = 10_000
NAMESPACE_PATTERN = re.compile(r"^[a-z][a-z0-9_.-]{0,127}$")
KNOWN_EVENT_TYPES = frozenset(common_pb2.EventType.values()) - {common_pb2.EVENT_TYPE_UNSPECIFIED}


def _event_filter(check: Check, field: str, message: common_pb2.EventFilter) -> EventFilter:
    for index, event_type in enumerate(message.types):
        check.check(f"{field}.types[{index}]", event_type in KNOWN_EVENT_TYPES, f"unknown event type {event_type}")
    check.config_key(f"{field}.config_key", message.config_key, required=False)
    check.max_length(f"{field}.subject", message.subject, NAME_LIMIT)
    return EventFilter(frozenset(message.types), message.config_key, message.subject)


def advance_epoch(request: state_pb2.AdvanceEpochRequest) -> tuple[int, str]:
    check = Check()
    check.leader_epoch("epoch", request.epoch)
    check.require("leader_id", request.leader_id)
    check.max_length("leader_id", request.leader_id, NAME_LIMIT)
    check.raise_if_invalid()
    return request.epoch, request.leader_id


def new_event(request: state_pb2.PublishEventRequest) -> NewEvent:
    check = Check()
    event = request.event
    check.check("event", request.HasField("event"), "is required")
    check.check("event.type", event.type in KNOWN_EVENT_TYPES, "must be a known EventType other than UNSPECIFIED")
    check.require("event.source", event.source, "is required (the publishing component)")
    for field in ("source", "subject", "idempotency_key"):
        check.max_length(f"event.{field}", getattr(event, field), NAME_LIMIT)
    check.config_key("event.config_key", event.config_key, required=False)
    check.check("event.sequence", event.sequence == 0, "is assigned by StateService; leave it 0")
    check.check("event.attributes", len(event.attributes) <= MAX_ATTRIBUTES, f"at most {MAX_ATTRIBUTES} entries")
    for key, value in event.attributes.items():
        check.max_length(f"event.attributes[{key[:32]}]", value, MAX_ATTRIBUTE_VALUE)
    check.raise_if_invalid()
    return NewEvent(
        type=event.type,
        source=event.source,
        subject=event.subject,
        config_key=event.config_key,
        attributes=dict(event.attributes),
        epoch=event.epoch,
        idempotency_key=event.idempotency_key,
    )


def list_events(request: state_pb2.ListEventsRequest) -> tuple[int, EventFilter, int]:
    check = Check()
    event_filter = _event_filter(check, "filter", request.filter)
    check.check("limit", request.limit <= MAX_EVENT_PAGE, f"must be at most {MAX_EVENT_PAGE}")
    check.raise_if_invalid()
    return request.after_sequence, event_filter, request.limit


def watch_events(request: state_pb2.WatchEventsRequest) -> tuple[int, EventFilter]:
    check = Check()
    event_filter = _event_filter(check, "filter", request.filter)
    check.raise_if_invalid()
    return request.from_sequence, event_filter


def _state_key(check: Check, namespace: str, key: str) -> None:
    check.check(
        "namespace",
        bool(NAMESPACE_PATTERN.match(namespace)),
        "must be 1-128 characters: lower-case letters, digits, '_', '.', '-', starting with a letter",
    )
    check.require("key", key)
    check.max_length("key", key, NAME_LIMIT)


def persist_state(request: state_pb2.PersistStateRequest) -> tuple[str, str, bytes, int, int]:
    check = Check()
    _state_key(check, request.namespace, request.key)
    check.check("value", len(request.value) <= MAX_STATE_VALUE_BYTES, f"must be at most {MAX_STATE_VALUE_BYTES} bytes")
    check.raise_if_invalid()
    return request.namespace, request.key, request.value, request.expected_version, request.epoch


def load_state(request: state_pb2.LoadStateRequest) -> tuple[str, str]:
    check = Check()
    _state_key(check, request.namespace, request.key)
    check.raise_if_invalid()
    return request.namespace, request.key


timestamp = to_timestamp


def event_message(stored: StoredEvent) -> common_pb2.Event:
    event = stored.event
    return common_pb2.Event(
        sequence=stored.sequence,
        type=event.type,
        time=timestamp(stored.time),
        source=event.source,
        subject=event.subject,
        config_key=event.config_key,
        attributes=event.attributes,
        epoch=event.epoch,
        idempotency_key=event.idempotency_key,
    )
