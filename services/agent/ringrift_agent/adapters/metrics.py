"""The agent's own Prometheus metrics (the runtime adds the gRPC ones)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


class PullMetrics:
    """Pulls by the path the bytes took (``stream``: the source's sendfile byte stream;
    ``grpc``: the ReadFile fallback) and outcome. A cluster whose pulls keep going over
    ``grpc`` has a stream port the agents cannot reach (see the agents' warnings)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._pulls = Counter(
            "ringrift_agent_pulls_total",
            "File pulls into this agent, by byte path and outcome.",
            ["via", "outcome"],
            registry=registry,
        )
        self._bytes = Counter(
            "ringrift_agent_pulled_bytes_total",
            "Bytes received by file pulls, by byte path.",
            ["via"],
            registry=registry,
        )

    def observe(self, via: str, outcome: str, received: int) -> None:
        self._pulls.labels(via, outcome).inc()
        if received:
            self._bytes.labels(via).inc(received)
