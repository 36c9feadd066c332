"""Client channels: deadline on every call, retries of UNAVAILABLE on idempotent
methods through the channel's retry policy, keepalive, request-id propagation."""

from __future__ import annotations

import json
from typing import Any

from ringrift_runtime.grpc.contracts import idempotent_methods
from ringrift_runtime.grpc.interceptors import DeadlineInterceptor
from ringrift_runtime.security.context import Security
from ringrift_runtime.settings import ClientSettings, EndpointSettings, ProcessSettings


def grpc_target(endpoint: str) -> str:
    """gRPC's target for an endpoint: host:port as it is; several instances (IP
    address:port, comma-separated) as one ipv4:/ipv6: target over all of them, which
    gRPC's pick_first connects to in order and leaves for the next when one dies."""
    instances = endpoint.split(",")
    if len(instances) == 1:
        return endpoint
    scheme = "ipv6" if instances[0].startswith("[") else "ipv4"
    return f"{scheme}:{','.join(instances)}"


def _seconds(value: float) -> str:
    return f"{value:.3f}s"


def service_config(settings: ClientSettings) -> str:
    """gRPC service config JSON with the retry policy for idempotent methods."""
    retry = {
        "maxAttempts": settings.retry_max_attempts,
        "initialBackoff": _seconds(settings.retry_initial_backoff_seconds),
        "maxBackoff": _seconds(settings.retry_max_backoff_seconds),
        "backoffMultiplier": settings.retry_backoff_multiplier,
        "retryableStatusCodes": ["UNAVAILABLE"],
    }
    names = [{"service": service, "method": method} for service, method in idempotent_methods()]
    config: dict = {"methodConfig": []}
    if settings.retry_max_attempts > 1:
        config["methodConfig"].append({"name": names, "retryPolicy": retry})
    return json.dumps(config)


class ChannelFactory:
    """Creates configured grpc.aio channels (mutual TLS unless the process is insecure);
    one factory per process, built in main."""

    def __init__(self, settings: ClientSettings, security: Security) -> None:
        self._settings = settings
        self.security = security
        self._service_config = service_config(settings)

    @classmethod
    def of(cls, settings: ProcessSettings, security: Security | None = None) -> ChannelFactory:
        return cls(settings.client, security or Security.of(settings))

    def deadline_for(self, full_method: str, streaming: bool) -> float:
        configured = self._settings.method_deadlines.get(full_method)
        if configured is not None:
            return configured
        return self._settings.stream_deadline_seconds if streaming else self._settings.deadline_seconds

    def options(self) -> list[tuple[str, object]]:
        return [
            ("grpc.enable_retries", 1),
            ("grpc.service_config", self._service_config),
            ("grpc.keepalive_time_ms", self._settings.keepalive_time_ms),
            ("grpc.keepalive_timeout_ms", self._settings.keepalive_timeout_ms),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.max_pings_without_data", 0),
        ]

    def channel(self, target: str, server_name: str) -> Any:
        """A channel to ``target`` (host:port, or several instances) that accepts only a
        server whose certificate carries ``server_name``; close it with ``await channel.close()``."""
        return self.security.channel(
            grpc_target(target), server_name, self.options(), [DeadlineInterceptor(self.deadline_for)]
        )

    def service(self, endpoints: EndpointSettings, name: str) -> Any:
        """A channel to the control-plane service ``name`` at its configured endpoint."""
        return self.channel(getattr(endpoints, name), self.security.service_name(name))

    def agent(self, address: str, node_id: str) -> Any:
        return self.channel(address, self.security.agent_name(node_id))


class ChannelPool:
    """One channel per agent (address and node), reused across calls; close at stop."""

    def __init__(self, factory: ChannelFactory) -> None:
        self._factory = factory
        self._channels: dict[tuple[str, str], Any] = {}

    def agent(self, address: str, node_id: str) -> Any:
        channel = self._channels.get((address, node_id))
        if channel is None:
            channel = self._channels[(address, node_id)] = self._factory.agent(address, node_id)
        return channel

    async def close(self) -> None:
        channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            await channel.close()
