"""Client channels: deadline on every call, retries of UNAVAILABLE on idempotent
methods through the channel's retry policy, keepalive, request-id propagation."""

from __future__ import annotations

import json

import grpc

from ringrift_runtime.grpc.contracts import idempotent_methods
from ringrift_runtime.grpc.interceptors import DeadlineInterceptor
from ringrift_runtime.settings import ClientSettings


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
    """Creates configured grpc.aio channels; one factory per process, built in main."""

    def __init__(self, settings: ClientSettings) -> None:
        self._settings = settings
        self._service_config = service_config(settings)

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

    def channel(self, target: str) -> grpc.aio.Channel:
        """An insecure channel to ``target`` (host:port); close it with ``await channel.close()``."""
        return grpc.aio.insecure_channel(
            target,
            options=self.options(),
            interceptors=[DeadlineInterceptor(self.deadline_for)],
        )


class ChannelPool:
    """One channel per address (agents, replicas), reused across calls; close at stop."""

    def __init__(self, factory: ChannelFactory) -> None:
        self._factory = factory
        self._channels: dict[str, grpc.aio.Channel] = {}

    def channel(self, address: str) -> grpc.aio.Channel:
        channel = self._channels.get(address)
        if channel is None:
            channel = self._channels[address] = self._factory.channel(address)
        return channel

    async def close(self) -> None:
        channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            await channel.close()
