"""A failed call as a typed exception: its gRPC status, the server's message, the reason
RingRift gave (ErrorInfo) and, for a refused request, every field it named (BadRequest).

The google.rpc messages are decoded from a descriptor pool of this module's own, so the
library needs nothing beyond grpcio and protobuf."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import grpc
from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, message_factory

STATUS_DETAILS_KEY = "grpc-status-details-bin"


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


class RingriftError(Exception):
    """A call the gateway (or the network) failed. ``code`` is the gRPC status."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(
        self,
        message: str,
        code: grpc.StatusCode | None = None,
        reason: str = "",
        metadata: dict[str, str] | None = None,
        violations: tuple[FieldViolation, ...] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.reason = reason  # RingRift's ErrorInfo reason, e.g. INVALID_FIELD, STALE_EPOCH
        self.metadata = metadata or {}
        self.violations = violations

    @property
    def fields(self) -> list[str]:
        """The request fields the server named (``jobs[3].spec.kind``)."""
        return [v.field for v in self.violations]

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"


class InvalidArgument(RingriftError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(RingriftError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(RingriftError):
    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(RingriftError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class OutOfRange(RingriftError):
    code = grpc.StatusCode.OUT_OF_RANGE


class PermissionDenied(RingriftError):
    code = grpc.StatusCode.PERMISSION_DENIED


class Unauthenticated(RingriftError):
    code = grpc.StatusCode.UNAUTHENTICATED


class ResourceExhausted(RingriftError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(RingriftError):
    """The gateway could not be reached, or a service behind it is down: worth a retry."""

    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(RingriftError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Cancelled(RingriftError):
    code = grpc.StatusCode.CANCELLED


class Unimplemented(RingriftError):
    code = grpc.StatusCode.UNIMPLEMENTED


class Internal(RingriftError):
    code = grpc.StatusCode.INTERNAL


BY_CODE: dict[grpc.StatusCode, type[RingriftError]] = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        NotFound,
        AlreadyExists,
        FailedPrecondition,
        OutOfRange,
        PermissionDenied,
        Unauthenticated,
        ResourceExhausted,
        Unavailable,
        DeadlineExceeded,
        Cancelled,
        Unimplemented,
        Internal,
    )
}


@cache
def _rpc_classes() -> dict[str, Any]:
    """google.rpc.Status, ErrorInfo and BadRequest, built in a private descriptor pool."""
    pool = descriptor_pool.DescriptorPool()
    pool.Add(descriptor_pb2.FileDescriptorProto.FromString(any_pb2.DESCRIPTOR.serialized_pb))
    Field = descriptor_pb2.FieldDescriptorProto
    string, int32, message = Field.TYPE_STRING, Field.TYPE_INT32, Field.TYPE_MESSAGE
    optional, repeated = Field.LABEL_OPTIONAL, Field.LABEL_REPEATED

    def field(
        name: str,
        number: int,
        kind: descriptor_pb2.FieldDescriptorProto.Type.ValueType,
        label: descriptor_pb2.FieldDescriptorProto.Label.ValueType = optional,
        type_name: str = "",
    ) -> descriptor_pb2.FieldDescriptorProto:
        built = Field(name=name, number=number, type=kind, label=label)
        if type_name:
            built.type_name = type_name
        return built

    file = descriptor_pb2.FileDescriptorProto(
        name="ringrift_client/google_rpc.proto", package="google.rpc", syntax="proto3"
    )
    file.dependency.append("google/protobuf/any.proto")
    file.message_type.add(
        name="Status",
        field=[
            field("code", 1, int32),
            field("message", 2, string),
            field("details", 3, message, repeated, ".google.protobuf.Any"),
        ],
    )
    info = file.message_type.add(
        name="ErrorInfo",
        field=[
            field("reason", 1, string),
            field("domain", 2, string),
            field("metadata", 3, message, repeated, ".google.rpc.ErrorInfo.MetadataEntry"),
        ],
    )
    entry = info.nested_type.add(name="MetadataEntry", field=[field("key", 1, string), field("value", 2, string)])
    entry.options.map_entry = True
    bad = file.message_type.add(
        name="BadRequest",
        field=[field("field_violations", 1, message, repeated, ".google.rpc.BadRequest.FieldViolation")],
    )
    bad.nested_type.add(name="FieldViolation", field=[field("field", 1, string), field("description", 2, string)])
    pool.Add(file)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"google.rpc.{name}"))
        for name in ("Status", "ErrorInfo", "BadRequest")
    }


def error_from(exc: grpc.RpcError) -> RingriftError:
    """The typed exception for a failed call (details decoded when the server sent them)."""
    code = exc.code() if callable(getattr(exc, "code", None)) else grpc.StatusCode.UNKNOWN
    message = (exc.details() if callable(getattr(exc, "details", None)) else "") or ""
    reason, metadata, violations = "", {}, []
    trailing = exc.trailing_metadata() if callable(getattr(exc, "trailing_metadata", None)) else None
    for key, value in trailing or ():
        if key != STATUS_DETAILS_KEY or not isinstance(value, bytes):
            continue
        classes = _rpc_classes()
        try:
            status = classes["Status"].FromString(value)
            for detail in status.details:
                kind = detail.type_url.rsplit("/", 1)[-1]
                if kind == "google.rpc.ErrorInfo":
                    info = classes["ErrorInfo"].FromString(detail.value)
                    reason, metadata = info.reason, dict(info.metadata)
                elif kind == "google.rpc.BadRequest":
                    bad = classes["BadRequest"].FromString(detail.value)
                    violations = [FieldViolation(v.field, v.description) for v in bad.field_violations]
        except Exception:  # undecodable details: the status and message still stand
            pass
    cls = BY_CODE.get(code, RingriftError)
    return cls(message, code, reason, metadata, tuple(violations))
