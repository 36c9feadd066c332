"""What a refusal sends back is bounded whatever the request held: a message echoing a
huge value once made the caller's gRPC library fail the call as INTERNAL ("metadata size
exceeds hard limit") instead of INVALID_ARGUMENT."""

from __future__ import annotations

import grpc

from ringrift_runtime import errors
from ringrift_runtime.grpc.status import MAX_MESSAGE, MAX_VIOLATIONS, bounded, rich_status, trailing_metadata_for


def test_a_refusal_of_huge_values_stays_far_below_the_metadata_limit() -> None:
    huge = "x" * 200_000
    refused = errors.InvalidArgument(errors.FieldViolation(f"jobs[{i}].spec.params[{huge}]", huge) for i in range(50))
    status = rich_status(grpc.StatusCode.INVALID_ARGUMENT, refused.message, refused)
    size = sum(len(key) + len(value) for key, value in trailing_metadata_for(status)) + len(status.message.encode())
    assert size < 5 * 1024, size
    assert len(status.message) <= MAX_MESSAGE + 40 and status.message.startswith("invalid request: jobs[0]")
    assert "more characters" in status.message
    accents = errors.InvalidArgument([errors.FieldViolation("é" * 9000, "é" * 9000)] * 50)  # two bytes a character
    accented = rich_status(grpc.StatusCode.INVALID_ARGUMENT, accents.message, accents)
    percent_encoded = 3 * len(accented.message.encode())  # the worst case of grpc-message
    assert percent_encoded + sum(len(k) + len(v) for k, v in trailing_metadata_for(accented)) < 7 * 1024


def test_bounded_keeps_short_text_and_says_how_much_was_cut() -> None:
    assert bounded("short") == "short"
    assert bounded("y" * 250) == "y" * 150 + "... (100 more characters)"
    assert bounded("é" * 100, 9) == "éééé... (96 more characters)"  # never half a character
    many = errors.InvalidArgument(errors.FieldViolation(f"f{i}", "bad") for i in range(20))
    from google.rpc import error_details_pb2

    status = rich_status(grpc.StatusCode.INVALID_ARGUMENT, many.message, many)
    bad = error_details_pb2.BadRequest()
    status.details[1].Unpack(bad)
    fields = [v.field for v in bad.field_violations]
    assert fields[:MAX_VIOLATIONS] == [f"f{i}" for i in range(MAX_VIOLATIONS)]
    assert fields[-1] == "..." and bad.field_violations[-1].description == "15 more violations not listed"


def test_out_of_range_crosses_the_wire_with_the_oldest_available_position() -> None:
    from ringrift_runtime.grpc.status import domain_error, status_code_for

    compacted = errors.OutOfRange("events up to 41 were deleted past their retention", 42)
    code = status_code_for(compacted)
    assert code is grpc.StatusCode.OUT_OF_RANGE
    status = rich_status(code, compacted.message, compacted)

    class Failed(grpc.RpcError):
        def code(self):
            return code

        def details(self):
            return status.message

        def trailing_metadata(self):
            return trailing_metadata_for(status)

    received = domain_error(Failed())
    assert isinstance(received, errors.OutOfRange) and received.oldest_available == 42
