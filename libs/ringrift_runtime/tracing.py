"""Traces with OpenTelemetry: W3C trace context (``traceparent``) on every call, one
server span per served call, and the trace id as the request id of logs.

Every call has a trace id to log and pass on; spans are recorded and exported only when
``tracing.exporter`` says where (settings.py), and only then is OpenTelemetry's SDK loaded
(~1.8 MiB resident in every process that does not export).
Work that continues after the call that started it (a job dispatched by a loop, run by an
agent, reported later) keeps the trace in the job's ``traceparent`` and resumes it with
``resumed``."""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import (
    INVALID_SPAN_ID,
    INVALID_TRACE_ID,
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from ringrift_runtime.logs import RotatingLog
from ringrift_runtime.settings import RotatedFile, SettingsError, TracingSettings

if TYPE_CHECKING:  # the SDK is imported when spans are recorded (an exporter is set)
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider

TRACEPARENT = "traceparent"
TRACEPARENT_PATTERN = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
_PROPAGATOR = TraceContextTextMapPropagator()
_provider: TracerProvider | None = None
_tracer: trace.Tracer | None = None
# Spans are recorded only when they go somewhere; without an exporter a call's span is a
# bare context (trace id, span id, the caller's sampling flag): ids for logs and calls,
# at a fraction of the cost.
_exporting = False
_sample_ratio = 1.0

__all__ = ["Span", "SpanKind", "Status", "StatusCode"]


def _one_line(span: ReadableSpan) -> str:
    return span.to_json(indent=None) + "\n"


class RotatingLines:
    """A text sink for the file exporter that keeps its size (the log's RotatingLog:
    renamed ``.1`` before a write would take it past the retention's size). Written from
    the exporter's thread only."""

    def __init__(self, path: Path, retention: RotatedFile) -> None:
        self._handler = RotatingLog(path, retention)
        self._handler.terminator = ""  # each span's line ends with its own newline

    def write(self, text: str) -> int:
        self._handler.emit(logging.makeLogRecord({"msg": text}))
        return len(text)

    def flush(self) -> None:
        self._handler.flush()

    def close(self) -> None:
        self._handler.close()


def configure_tracing(settings: TracingSettings, service: str, instance: str) -> TracerProvider | None:
    """Install this process's tracer provider (once, at start) with the configured
    exporter; none without one (calls then carry bare span contexts, and the SDK stays
    unloaded)."""
    global _provider, _tracer, _exporting, _sample_ratio
    _exporting, _sample_ratio = settings.exporter != "none", settings.sample_ratio
    _provider, _tracer = None, None
    if not _exporting:
        return None
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    provider = TracerProvider(
        resource=Resource.create({"service.name": f"ringrift-{service}", "service.instance.id": instance}),
        sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio)),
    )
    if settings.exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        exporter: Any = OTLPSpanExporter(endpoint=settings.otlp_endpoint, insecure=settings.otlp_insecure)
        provider.add_span_processor(BatchSpanProcessor(exporter))
    elif settings.exporter == "file":
        assert settings.directory is not None  # the settings insist
        try:
            settings.directory.mkdir(parents=True, exist_ok=True)
            path = settings.directory / f"{service}-{_file_safe(instance)}.jsonl"
            out = RotatingLines(path, settings)
        except OSError as exc:
            raise SettingsError(f"tracing.directory {str(settings.directory)[:200]!r} is not writable: {exc}") from exc
        # The batch processor writes from its own thread, never on the event loop.
        exporter = ConsoleSpanExporter(out=out, formatter=_one_line)
        provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=500))
    _provider, _tracer = provider, None
    return provider


def shutdown_tracing() -> None:
    """Flush and stop the exporter (at process exit)."""
    global _provider, _tracer
    if _provider is not None:
        _provider.shutdown()
        _provider, _tracer = None, None


def _file_safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:100] or "process"


def tracer() -> trace.Tracer:
    """This process's tracer (made once: the SDK builds a new one per get_tracer); a
    provider of its own (no export) until configure_tracing."""
    global _provider, _tracer
    if _tracer is None:
        if _provider is None:
            from opentelemetry.sdk.trace import TracerProvider

            _provider = TracerProvider()
        _tracer = _provider.get_tracer("ringrift")
    return _tracer


def parent_of(metadata: Any) -> SpanContext | None:
    """The caller's span context from gRPC invocation metadata (pairs of key, value), or
    None when it sent no valid traceparent."""
    for key, value in metadata or ():
        if key == TRACEPARENT and isinstance(value, str):
            return _span_context(value)
    return None


def _span_context(traceparent: str) -> SpanContext | None:
    if not TRACEPARENT_PATTERN.match(traceparent):
        return None
    _, trace_id, span_id, flags = traceparent.split("-")
    if int(trace_id, 16) == 0 or int(span_id, 16) == 0:
        return None
    return SpanContext(int(trace_id, 16), int(span_id, 16), is_remote=True, trace_flags=TraceFlags(int(flags, 16)))


def _bare_span(parent: SpanContext | None) -> Span:
    """A non-recording span continuing ``parent`` (its sampling flag kept) or beginning a
    trace (sampled at the configured ratio, for processes downstream that export)."""
    if parent is not None:
        trace_id, flags = parent.trace_id, parent.trace_flags
    else:
        trace_id = _random_id(128, INVALID_TRACE_ID)
        flags = TraceFlags(TraceFlags.SAMPLED if random.random() < _sample_ratio else TraceFlags.DEFAULT)
    span_id = _random_id(64, INVALID_SPAN_ID)
    return NonRecordingSpan(SpanContext(trace_id, span_id, is_remote=False, trace_flags=flags))


def _random_id(bits: int, invalid: int) -> int:
    """A random trace or span id, never the invalid one (as the SDK's RandomIdGenerator)."""
    while True:
        value = random.getrandbits(bits)
        if value != invalid:
            return value


def inject(metadata: MutableMapping[str, str] | Any) -> None:
    """Add the current trace context to outbound gRPC metadata (a grpc.aio.Metadata)."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    value = carrier.get(TRACEPARENT)
    if value is not None and TRACEPARENT not in metadata:
        metadata[TRACEPARENT] = value


def current_traceparent() -> str:
    """The W3C traceparent of the current span, or "" outside any trace."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get(TRACEPARENT, "")


def trace_id_of(span: Span) -> str:
    context = span.get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else ""


def _parent_context(parent: SpanContext | None) -> otel_context.Context | None:
    return trace.set_span_in_context(NonRecordingSpan(parent)) if parent is not None else None


@contextmanager
def resumed(name: str, traceparent: str, attributes: Mapping[str, str] | None = None) -> Iterator[Span]:
    """A span continuing the trace ``traceparent`` recorded (a new trace when it is empty
    or malformed), current for the block: calls made inside carry it on."""
    parent = _span_context(traceparent) if traceparent else None
    if not _exporting:
        span = _bare_span(parent)
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            yield span
        finally:
            otel_context.detach(token)
        return
    context = _parent_context(parent)
    with tracer().start_as_current_span(name, context=context, attributes=dict(attributes or {})) as recorded:
        yield recorded


def start_server_span(method: str, metadata: Any) -> tuple[Span, object]:
    """The span of one served call, made current; end it with end_server_span."""
    parent = parent_of(metadata)
    if not _exporting:
        span = _bare_span(parent)
    else:
        service, _, name = method.lstrip("/").partition("/")
        span = tracer().start_span(
            method.lstrip("/"),
            context=_parent_context(parent),
            kind=SpanKind.SERVER,
            attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": name},
        )
    token = otel_context.attach(trace.set_span_in_context(span))
    return span, token


def end_server_span(span: Span, token: object, code_name: str) -> None:
    if span.is_recording():
        span.set_attribute("rpc.grpc.status_code", code_name)
        if code_name not in ("OK", "CANCELLED", "NOT_FOUND", "ALREADY_EXISTS", "INVALID_ARGUMENT"):
            span.set_status(Status(StatusCode.ERROR, code_name))
        span.end()
    otel_context.detach(token)  # type: ignore[arg-type]


def read_spans(directory: Path) -> list[dict[str, Any]]:
    """Every span the ``file`` exporter wrote under ``directory`` (tests, debugging)."""
    import json

    spans = []
    for path in sorted(directory.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                spans.append(json.loads(line))
    return spans
