"""The single mapping from the error taxonomy to gRPC status codes, and its inverse
for clients (reason and field violations out of a failed call)."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from ringrift_runtime import errors

ERROR_DOMAIN = "ringrift.io"
STATUS_DETAILS_KEY = "grpc-status-details-bin"

# What a failed call sends back stays far below gRPC's 8 KiB metadata limit whatever the
# request held (a message echoing a huge value once made the caller's own gRPC library
# fail the call as INTERNAL "metadata size exceeds hard limit"): the message, every field
# name, description and ErrorInfo value are cut (in UTF-8 bytes: the message travels
# percent-encoded, up to three characters a byte), and at most MAX_VIOLATIONS are listed.
# Worst case about 6 KiB in all.
MAX_MESSAGE = 1000
MAX_ITEM = 150
MAX_VIOLATIONS = 5


def bounded(text: str, limit: int = MAX_ITEM) -> str:
    """``text``, or as much of it as fits in ``limit`` UTF-8 bytes and how much more there was."""
    data = text.encode()
    if len(data) <= limit:
        return text
    kept = data[:limit].decode("utf-8", "ignore")
    return f"{kept}... ({len(text) - len(kept)} more characters)"


# First match wins (subclasses before their bases).
STATUS_BY_ERROR: tuple[tuple[type[errors.RingriftError], grpc.StatusCode], ...] = (
    (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (errors.StaleEpoch, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.WrongState, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.Conflict, grpc.StatusCode.ABORTED),
    (errors.OutOfRange, grpc.StatusCode.OUT_OF_RANGE),
    (errors.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (errors.PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (errors.ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.DependencyUnavailable, grpc.StatusCode.UNAVAILABLE),
    (errors.NotLeader, grpc.StatusCode.UNAVAILABLE),
    (errors.NotImplementedYet, grpc.StatusCode.UNIMPLEMENTED),
)


def status_code_for(error: errors.RingriftError) -> grpc.StatusCode:
    for error_type, code in STATUS_BY_ERROR:
        if isinstance(error, error_type):
            return code
    return grpc.StatusCode.INTERNAL


def rich_status(code: grpc.StatusCode, message: str, error: errors.RingriftError | None) -> status_pb2.Status:
    """google.rpc.Status with ErrorInfo (and BadRequest for invalid arguments), every part
    bounded (MAX_MESSAGE, MAX_ITEM, MAX_VIOLATIONS)."""
    status = status_pb2.Status(code=code.value[0], message=bounded(message, MAX_MESSAGE))
    if error is not None:
        metadata = {bounded(k, 64): bounded(v, 2 * MAX_ITEM) for k, v in list(error.metadata.items())[:8]}
        info = error_details_pb2.ErrorInfo(reason=error.reason, domain=ERROR_DOMAIN, metadata=metadata)
        packed = any_pb2.Any()
        packed.Pack(info)
        status.details.append(packed)
        if isinstance(error, errors.InvalidArgument):
            listed = error.violations[:MAX_VIOLATIONS]
            bad = error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=bounded(v.field), description=bounded(v.description)
                    )
                    for v in listed
                ]
            )
            if len(error.violations) > len(listed):
                bad.field_violations.add(
                    field="...", description=f"{len(error.violations) - len(listed)} more violations not listed"
                )
            packed = any_pb2.Any()
            packed.Pack(bad)
            status.details.append(packed)
    return status


def trailing_metadata_for(status: status_pb2.Status) -> tuple[tuple[str, bytes], ...]:
    return ((STATUS_DETAILS_KEY, status.SerializeToString()),)


def status_of(error: grpc.RpcError) -> status_pb2.Status | None:
    """The google.rpc.Status details of a failed call, if the server sent them."""
    metadata = error.trailing_metadata() if hasattr(error, "trailing_metadata") else None
    for key, value in metadata or ():
        if key == STATUS_DETAILS_KEY:
            return status_pb2.Status.FromString(value)
    return None


def domain_error(error: grpc.RpcError) -> errors.RingriftError:
    """The taxonomy error a failed outbound call stands for (inverse of STATUS_BY_ERROR)."""
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    details = (error.details() if hasattr(error, "details") else "") or code.name
    reason = error_reason(error)
    if reason == errors.StaleEpoch.reason:
        info = _error_info(error)
        return errors.StaleEpoch(int(info.get("received_epoch", 0)), int(info.get("highest_epoch", 0)))
    if code == grpc.StatusCode.OUT_OF_RANGE:
        return errors.OutOfRange(details, int(_error_info(error).get("oldest_available", "0") or 0))
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        violations = field_violations(error) or {"request": details}
        return errors.InvalidArgument(errors.FieldViolation(f, d) for f, d in violations.items())
    for error_type, mapped in STATUS_BY_ERROR:
        if mapped == code and error_type not in (errors.InvalidArgument, errors.StaleEpoch, errors.OutOfRange):
            return error_type(details)
    if code in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED):
        return errors.DependencyUnavailable(details)
    return errors.RingriftError(details)


def _error_info(error: grpc.RpcError) -> dict[str, str]:
    status = status_of(error)
    for detail in status.details if status else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return dict(info.metadata)
    return {}


def error_reason(error: grpc.RpcError) -> str | None:
    """ErrorInfo.reason of a failed call (e.g. "STALE_EPOCH")."""
    status = status_of(error)
    for detail in status.details if status else ():
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info.reason
    return None


def field_violations(error: grpc.RpcError) -> dict[str, str]:
    """Field -> description of an INVALID_ARGUMENT call's BadRequest details."""
    status = status_of(error)
    found: dict[str, str] = {}
    for detail in status.details if status else ():
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            found.update({v.field: v.description for v in bad.field_violations})
    return found


assert code_pb2.INVALID_ARGUMENT == grpc.StatusCode.INVALID_ARGUMENT.value[0]
