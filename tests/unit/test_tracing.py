"""Trace context without an exporter: a served call continues the caller's trace (its
trace id and sampling flag), a malformed traceparent starts a new trace, outbound calls
carry the current context, and a stored traceparent resumes its trace later."""

from __future__ import annotations

import json

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


def test_the_file_exporter_keeps_its_files_within_their_retention(tmp_path) -> None:
    """Spans written to a file (tracing.exporter=file) roll over at file_max_bytes and only
    file_keep old files stay: a process traced for months holds a bounded amount."""
    settings = TracingSettings(exporter="file", directory=tmp_path, file_max_bytes=4096, file_keep=2)
    tracing.configure_tracing(settings, "test", "t/1")
    for n in range(120):
        span, token = tracing.start_server_span(f"/a.B/Call{n}", [])
        tracing.end_server_span(span, token, "OK")
    tracing.shutdown_tracing()  # flushes the batch
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["test-t_1.jsonl", "test-t_1.jsonl.1", "test-t_1.jsonl.2"]
    names = []
    for path in tmp_path.iterdir():
        assert 0 < path.stat().st_size <= 4096
        names += [json.loads(line)["name"] for line in path.read_text().splitlines()]
    assert "a.B/Call119" in names and "a.B/Call0" not in names  # the newest kept, the oldest gone
    assert len(names) == len(set(names))


def test_opentelemetry_s_sdk_is_loaded_only_by_a_process_that_exports(tmp_path) -> None:
    """Without an exporter a process serves and resumes traces on the API alone (~1.8 MiB
    less in every process); with one it loads the SDK and records spans."""
    import subprocess
    import sys

    code = f"""
import sys
import ringrift_agent.main, ringrift_gateway.main, ringrift_cohost.main
from ringrift_runtime import tracing
from ringrift_runtime.settings import TracingSettings
def sdk():
    return any(name.startswith("opentelemetry.sdk") for name in sys.modules)
tracing.configure_tracing(TracingSettings(), "test", "t1")
span, token = tracing.start_server_span("/a.B/C", [])
tracing.end_server_span(span, token, "OK")
with tracing.resumed("later", tracing.current_traceparent()):
    pass
print(sdk(), len(tracing.trace_id_of(span)))
tracing.configure_tracing(TracingSettings(exporter="file", directory={str(tmp_path)!r}), "test", "t1")
span, token = tracing.start_server_span("/a.B/C", [])
tracing.end_server_span(span, token, "OK")
tracing.shutdown_tracing()
print(sdk(), len(tracing.trace_id_of(span)))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.splitlines() == ["False 32", "True 32"], out.stdout + out.stderr
    assert [span["name"] for span in tracing.read_spans(tmp_path)] == ["a.B/C"]
