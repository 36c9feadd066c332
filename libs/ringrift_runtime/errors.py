"""The error taxonomy. Domain code raises these (no grpc import here); the single
mapping to gRPC status codes lives in ringrift_runtime.grpc.status.

Messages of these errors are written for the client: they name the field or entity and
say what to fix. Anything that is not a RingriftError reaches the client only as a
generic INTERNAL error; its detail goes to the log.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True)
class FieldViolation:
    """One bad field of a request: its path (e.g. ``spec.config_key``) and what is wrong."""

    field: str
    description: str


class RingriftError(Exception):
    """Base of every error with a client-facing meaning."""

    reason: ClassVar[str] = "UNSPECIFIED"

    def __init__(self, message: str, **metadata: str) -> None:
        super().__init__(message)
        self.message = message
        self.metadata = {key: str(value) for key, value in metadata.items()}


class InvalidArgument(RingriftError):
    """The request is malformed; ``violations`` names every offending field."""

    reason = "INVALID_FIELD"

    def __init__(self, violations: Iterable[FieldViolation]) -> None:
        self.violations = tuple(violations)
        if not self.violations:
            raise ValueError("InvalidArgument needs at least one violation")
        text = "; ".join(f"{v.field}: {v.description}" for v in self.violations)
        super().__init__(f"invalid request: {text}", fields=",".join(v.field for v in self.violations))

    @classmethod
    def field(cls, field: str, description: str) -> InvalidArgument:
        return cls([FieldViolation(field, description)])


class NotFound(RingriftError):
    reason = "NOT_FOUND"


class AlreadyExists(RingriftError):
    reason = "ALREADY_EXISTS"


class WrongState(RingriftError):
    """The entity's state does not allow the operation (e.g. an illegal job transition)."""

    reason = "WRONG_STATE"


class StaleEpoch(RingriftError):
    """A call carried an epoch lower than the highest the receiver has seen (fencing)."""

    reason = "STALE_EPOCH"

    def __init__(self, received: int, highest: int) -> None:
        super().__init__(
            f"stale epoch {received}: epoch {highest} has been seen; this caller is no longer leader",
            received_epoch=str(received),
            highest_epoch=str(highest),
        )
        self.received = received
        self.highest = highest


class Unauthenticated(RingriftError):
    """The caller presented no identity of this cluster."""

    reason = "UNAUTHENTICATED"


class PermissionDenied(RingriftError):
    """The caller's identity may not make this call."""

    reason = "PERMISSION_DENIED"


class OutOfRange(RingriftError):
    """A position before what is kept (events compacted past their retention); the
    metadata's ``oldest_available`` says where reading can resume."""

    reason = "OUT_OF_RANGE"

    def __init__(self, message: str, oldest_available: int) -> None:
        super().__init__(message, oldest_available=str(oldest_available))
        self.oldest_available = oldest_available


class Conflict(RingriftError):
    """A concurrent change won; re-read and retry."""

    reason = "CONFLICT"


class ResourceExhausted(RingriftError):
    """The caller is past a limit it can wait out (its concurrent calls or open streams)."""

    reason = "RESOURCE_EXHAUSTED"


class DependencyUnavailable(RingriftError):
    reason = "DEPENDENCY_UNAVAILABLE"


class NotLeader(RingriftError):
    reason = "NOT_LEADER"


class NotImplementedYet(RingriftError):
    reason = "NOT_IMPLEMENTED"
