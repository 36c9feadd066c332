"""Trace context without an exporter: a served call continues the caller's trace (its
trace id and sampling flag), a malformed traceparent starts a new trace, outbound calls
carry the current context, and a stored traceparent resumes its trace later."""

from __future__ import annotations

import grpc
import pytest

from ringrift_runtime import tracing
from ringrift_runtime.settings import TracingSettings

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture(autouse=True)
def no_export():
    tracing.configure_tracing(TracingSettings(), "test", "t1")
    yield
    tracing.shutdown_tracing()


@pytest.mark.parametrize("flags", ["01", "00"])
def test_a_served_call_continues_the_callers_trace_and_passes_it_on(flags: str) -> None:
    span, token = tracing.start_server_span("/a.B/C", [("traceparent", f"00-{TRACE}-00f067aa0ba902b7-{flags}")])
    try:
        assert tracing.trace_id_of(span) == TRACE
        outbound = grpc.aio.Metadata()
        tracing.inject(outbound)
        version, trace_id, span_id, sent_flags = outbound["traceparent"].split("-")
        assert (version, trace_id, sent_flags) == ("00", TRACE, flags) and span_id != "00f067aa0ba902b7"
        stored = tracing.current_traceparent()
    finally:
        tracing.end_server_span(span, token, "OK")
    assert tracing.current_traceparent() == ""  # the call's context ended with it
    with tracing.resumed("later", stored) as later:
        assert tracing.trace_id_of(later) == TRACE and tracing.current_traceparent().split("-")[1] == TRACE


@pytest.mark.parametrize(
    "metadata",
    [[], [("traceparent", "garbage")], [("traceparent", f"00-{'0' * 32}-00f067aa0ba902b7-01")], [("x", "y")]],
)
def test_without_a_valid_traceparent_a_call_begins_its_own_trace(metadata) -> None:
    span, token = tracing.start_server_span("/a.B/C", metadata)
    try:
        assert len(tracing.trace_id_of(span)) == 32 and tracing.trace_id_of(span) != "0" * 32
    finally:
        tracing.end_server_span(span, token, "OK")
    with tracing.resumed("orphan", "not-a-traceparent") as fresh:
        assert len(tracing.trace_id_of(fresh)) == 32
