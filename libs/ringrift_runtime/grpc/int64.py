"""Every integer a request carries fits a signed 64-bit integer: the databases store
signed 64-bit values, and a uint64 above 2**63 - 1 (an epoch, a sequence, a size) would
otherwise fail deep in a query as INTERNAL. The server interceptor refuses such a request
as INVALID_ARGUMENT naming the field, for every method of every service."""

from __future__ import annotations

from functools import cache
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from ringrift_runtime import errors

INT64_MAX = 2**63 - 1
UNSIGNED_64 = (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64)


@cache
def _fields_to_check(descriptor: Descriptor) -> tuple[tuple[FieldDescriptor, bool], ...]:
    """(field, is a message) for each field that is or may hold an unsigned 64-bit integer."""
    found = []
    for field in descriptor.fields:
        if field.type in UNSIGNED_64:
            found.append((field, False))
        elif field.message_type is not None and _may_hold(field.message_type, frozenset()):
            found.append((field, True))
    return tuple(found)


def _may_hold(descriptor: Descriptor, seen: frozenset[str]) -> bool:
    if descriptor.full_name in seen:
        return False
    for field in descriptor.fields:
        if field.type in UNSIGNED_64:
            return True
        if field.message_type is not None and _may_hold(field.message_type, seen | {descriptor.full_name}):
            return True
    return False


def int64_violations(message: Any, prefix: str = "", limit: int = 5) -> list[errors.FieldViolation]:
    """The fields of ``message`` (recursively) holding an unsigned value above INT64_MAX."""
    found: list[errors.FieldViolation] = []
    for field, nested in _fields_to_check(message.DESCRIPTOR):
        name = f"{prefix}{field.name}"
        value = getattr(message, field.name)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            entries = value.items()
            value_field = field.message_type.fields_by_name["value"]
            for key, item in entries:
                if value_field.message_type is not None:
                    found += int64_violations(item, f"{name}[{str(key)[:40]}].", limit)
                elif value_field.type in UNSIGNED_64 and item > INT64_MAX:
                    found.append(errors.FieldViolation(f"{name}[{str(key)[:40]}]", f"must be at most {INT64_MAX}"))
        elif nested:
            items = list(value) if field.is_repeated else ([value] if message.HasField(field.name) else [])
            for index, item in enumerate(items):
                found += int64_violations(item, f"{name}[{index}]." if field.is_repeated else f"{name}.", limit)
                if len(found) >= limit:
                    break
        else:
            values = list(value) if field.is_repeated else [value]
            if any(v > INT64_MAX for v in values):
                found.append(errors.FieldViolation(name, f"must be at most {INT64_MAX}"))
        if len(found) >= limit:
            return found[:limit]
    return found
