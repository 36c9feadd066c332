"""Prometheus metrics and the HTTP side port (/metrics, /healthz).

Each server host owns a registry (several hosts may share a test process). The side
port runs in its own daemon thread, never on the event loop.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

# Buckets from 0.5 ms to 60 s: control-plane calls are mostly milliseconds.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class RpcMetrics:
    """Server-side RPC metrics, named as in go-grpc-prometheus so dashboards carry over."""

    def __init__(self, registry: CollectorRegistry, service: str, instance: str, version: str) -> None:
        self.registry = registry
        self.handled = Counter(
            "grpc_server_handled_total",
            "RPCs completed on the server, by method and status code.",
            ["grpc_service", "grpc_method", "grpc_code"],
            registry=registry,
        )
        self.latency = Histogram(
            "grpc_server_handling_seconds",
            "Latency of RPCs on the server, by method and status code.",
            ["grpc_service", "grpc_method", "grpc_code"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.info = Gauge(
            "ringrift_process_info", "Identity of this process.", ["service", "instance", "version"], registry=registry
        )
        self.info.labels(service, instance, version).set(1)

    def observe(self, full_method: str, code: str, seconds: float) -> None:
        service, _, method = full_method.lstrip("/").partition("/")
        self.handled.labels(service, method, code).inc()
        self.latency.labels(service, method, code).observe(seconds)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


# WSGI environ -> (status line, content type, body[, more headers]).
Route = Callable[[dict], tuple[str, str, bytes] | tuple[str, str, bytes, list[tuple[str, str]]]]


class SidePort:
    """HTTP server for /metrics, /healthz and any extra ``routes`` (the gateway's
    dashboard) in a daemon thread."""

    def __init__(
        self,
        host: str,
        port: int,
        registry: CollectorRegistry,
        healthy: Callable[[], bool],
        routes: dict[str, Route] | None = None,
    ) -> None:
        metrics_app = make_wsgi_app(registry)
        extra = dict(routes or {})

        def app(environ, start_response):
            path = environ.get("PATH_INFO") or "/"
            if path == "/healthz":
                ok = healthy()
                start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "text/plain")])
                return [b"ok\n" if ok else b"not serving\n"]
            if path in extra:
                headers: list[tuple[str, str]] = []
                try:
                    status, content_type, body, *more = extra[path](environ)
                    headers = list(more[0]) if more else []
                except Exception as exc:  # a broken page must not take the metrics down
                    status, content_type, body = (
                        "500 Internal Server Error",
                        "text/plain",
                        f"{type(exc).__name__}\n".encode(),
                    )
                start_response(
                    status,
                    [
                        ("Content-Type", content_type),
                        ("Content-Length", str(len(body))),
                        ("Cache-Control", "no-store"),
                        *headers,
                    ],
                )
                return [body]
            return metrics_app(environ, start_response)

        self._server = make_server(host, port, app, ThreadingWSGIServer, handler_class=_QuietHandler)
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics-http", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
