"""Traces with OpenTelemetry: W3C trace context (``traceparent``) on every call, one
server span per served call, and the trace id as the request id of logs.

The process always has an SDK tracer provider, so every call has a trace id to log and
pass on; spans are exported only when ``tracing.exporter`` says where (settings.py).
Work that continues after the call that started it (a job dispatched by a loop, run by an
agent, reported later) keeps the trace in the job's ``traceparent`` and resumes it with
``resumed``."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from ringrift_runtime.settings import SettingsError, TracingSettings

TRACEPARENT = "traceparent"
TRACEPARENT_PATTERN = re.compile(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
_PROPAGATOR = TraceContextTextMapPropagator()
_provider: TracerProvider | None = None

__all__ = ["Span", "SpanKind", "Status", "StatusCode"]


def _one_line(span: ReadableSpan) -> str:
    return span.to_json(indent=None) + "\n"


def configure_tracing(settings: TracingSettings, service: str, instance: str) -> TracerProvider:
    """Install this process's tracer provider (once, at start) with the configured exporter."""
    global _provider
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
            out = (settings.directory / f"{service}-{_file_safe(instance)}.jsonl").open("a", encoding="utf-8")
        except OSError as exc:
            raise SettingsError(f"tracing.directory {str(settings.directory)[:200]!r} is not writable: {exc}") from exc
        # The batch processor writes from its own thread, never on the event loop.
        exporter = ConsoleSpanExporter(out=out, formatter=_one_line)
        provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=500))
    _provider = provider
    return provider


def shutdown_tracing() -> None:
    """Flush and stop the exporter (at process exit)."""
    global _provider
    if _provider is not None:
        _provider.shutdown()
        _provider = None


def _file_safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:100] or "process"


def tracer() -> trace.Tracer:
    """This process's tracer; a provider of its own (no export) until configure_tracing."""
    global _provider
    if _provider is None:
        _provider = TracerProvider()
    return _provider.get_tracer("ringrift")


def extract(metadata: Any) -> otel_context.Context:
    """The caller's trace context from gRPC invocation metadata (pairs of key, value)."""
    carrier = {key: value for key, value in metadata or () if key == TRACEPARENT and isinstance(value, str)}
    return _PROPAGATOR.extract(carrier)


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


def context_of(traceparent: str) -> otel_context.Context | None:
    """The context a stored traceparent stands for; None when it is empty or malformed."""
    if not traceparent or not TRACEPARENT_PATTERN.match(traceparent):
        return None
    return _PROPAGATOR.extract({TRACEPARENT: traceparent})


@contextmanager
def resumed(name: str, traceparent: str, attributes: Mapping[str, str] | None = None) -> Iterator[Span]:
    """A span continuing the trace ``traceparent`` recorded (a new trace when it has none),
    current for the block: calls made inside carry it on."""
    parent = context_of(traceparent)
    with tracer().start_as_current_span(name, context=parent, attributes=dict(attributes or {})) as span:
        yield span


def start_server_span(method: str, metadata: Any) -> tuple[Span, object]:
    """The span of one served call, made current; end it with end_server_span."""
    service, _, name = method.lstrip("/").partition("/")
    span = tracer().start_span(
        method.lstrip("/"),
        context=extract(metadata),
        kind=SpanKind.SERVER,
        attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": name},
    )
    token = otel_context.attach(trace.set_span_in_context(span))
    return span, token


def end_server_span(span: Span, token: object, code_name: str) -> None:
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
