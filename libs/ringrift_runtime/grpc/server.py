"""Server bootstrap: a grpc.aio server with health (per service), reflection, the
server interceptor, the metrics side port, and graceful shutdown on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import CollectorRegistry

from ringrift_runtime import __version__
from ringrift_runtime.cluster.registry import ServiceEndpointRegistration
from ringrift_runtime.grpc.interceptors import Audit, CallerLimits, ServerInterceptor
from ringrift_runtime.metrics import RpcMetrics, SidePort
from ringrift_runtime.security.authz import Authorization
from ringrift_runtime.security.context import Security
from ringrift_runtime.security.identity import Identity
from ringrift_runtime.security.tokens import TokenStore
from ringrift_runtime.settings import ProcessSettings, SettingsError

log = logging.getLogger("ringrift.server")

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@dataclass(frozen=True)
class ServiceRegistration:
    """A servicer and the generated function that adds it to a server."""

    full_name: str  # e.g. "ringrift.state.v1.StateService"
    servicer: Any
    add_to_server: Callable[[Any, grpc.aio.Server], None]


@dataclass(frozen=True)
class Bound:
    """Where a started host listens, handed to the app's start()."""

    host: str
    grpc_port: int
    metrics_port: int
    instance: str
    registry: CollectorRegistry

    @property
    def address(self) -> str:
        return f"{self.host}:{self.grpc_port}"


class AccessTable(Protocol):
    """Who may call what (ringrift_contracts.access)."""

    def allowed(self, method: str, identity: Identity | None) -> bool: ...

    def needs_identity(self, method: str) -> bool: ...


class ServiceApp(Protocol):
    """What a service's composition root (main.build) returns."""

    name: str
    registrations: Sequence[ServiceRegistration]

    async def start(self, bound: Bound) -> None:
        """Connect dependencies; the host reports SERVING once this returns."""

    async def stop(self) -> None:
        """Release resources after the server has drained.

        An app may also define ``async def before_drain()``, awaited as soon as the
        shutdown signal arrives."""


@dataclass
class StaticApp:
    """An app with servicers and no dependencies to start or stop."""

    name: str
    registrations: Sequence[ServiceRegistration] = field(default_factory=list)

    async def start(self, bound: Bound) -> None:
        return None

    async def stop(self) -> None:
        return None


def instance_name(settings: ProcessSettings, service: str) -> str:
    return settings.instance_id or f"{service}-{socket.gethostname()}-{os.getpid()}"


class GrpcHost:
    """One gRPC server with health, reflection, interceptors and metrics."""

    def __init__(
        self,
        service: str,
        registrations: Sequence[ServiceRegistration],
        settings: ProcessSettings,
        port: int | None = None,
        routes: dict | None = None,
        security: Security | None = None,
        token_port: int | None = None,
        access: AccessTable | None = None,
        audit: Audit | None = None,
    ) -> None:
        self.service = service
        self.security = security or Security.of(settings)
        authorization = None
        if not self.security.insecure:
            if access is None:
                raise SettingsError(f"{service} has no authorization table: every RPC must have an entry")
            tokens = TokenStore(settings.security.tokens_file) if settings.security.tokens_file else None
            authorization = Authorization(self.security.cluster, access.allowed, access.needs_identity, tokens)
        self._token_port = token_port  # the gateway's port for callers with a token instead of a certificate
        self.token_port_bound = 0
        self._routes = routes  # extra HTTP side-port pages (the gateway's dashboard)
        self.registrations = list(registrations)
        self.settings = settings
        self.instance = instance_name(settings, service)
        self.registry = CollectorRegistry()
        self.metrics = RpcMetrics(self.registry, service, self.instance, __version__)
        self._requested_port = settings.grpc_port(service) if port is None else port
        self.health = health.aio.HealthServicer()
        self.port = 0
        self.metrics_port = 0
        self._side_port: SidePort | None = None
        self._serving = False
        self._server = grpc.aio.server(
            interceptors=[
                ServerInterceptor(
                    self.metrics,
                    settings.logging.log_health_checks,
                    authorization,
                    audit,
                    CallerLimits(settings.server.max_calls_per_caller, settings.server.max_streams_per_caller),
                )
            ],
            options=[
                ("grpc.max_receive_message_length", settings.server.max_receive_message_bytes),
                ("grpc.so_reuseport", 0),
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
                ("grpc.http2.max_ping_strikes", 0),
            ],
            maximum_concurrent_rpcs=settings.server.max_concurrent_rpcs,
        )

    @property
    def address(self) -> str:
        return f"{self.settings.server.host}:{self.port}"

    @property
    def serving(self) -> bool:
        return self._serving

    async def start(self) -> int:
        """Bind and start; health is NOT_SERVING until set_serving(True)."""
        for registration in self.registrations:
            registration.add_to_server(registration.servicer, self._server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        names = [r.full_name for r in self.registrations]
        reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME], self._server)
        await self._set_all(NOT_SERVING)
        host = self.settings.server.host
        self.port = self.security.add_port(self._server, f"{host}:{self._requested_port}")
        if self.port == 0:
            raise OSError(f"cannot bind gRPC port {host}:{self._requested_port}")
        if self._token_port is not None and not self.security.insecure:
            self.token_port_bound = self.security.add_port(self._server, f"{host}:{self._token_port}", False)
            if self.token_port_bound == 0:
                raise OSError(f"cannot bind the token port {host}:{self._token_port}")
        self.security.warn_if_insecure()
        await self._server.start()
        if self.settings.metrics.enabled:
            side = SidePort(
                self.settings.metrics.host,
                self.settings.metrics_port(self.port),
                self.registry,
                lambda: self._serving,
                self._routes,
            )
            side.start()
            self._side_port, self.metrics_port = side, side.port
        log.info("%s listening on %s (metrics port %s)", self.service, self.address, self.metrics_port or "off")
        return self.port

    async def _set_all(self, status: int) -> None:
        await self.health.set(health.OVERALL_HEALTH, status)
        for registration in self.registrations:
            await self.health.set(registration.full_name, status)

    async def set_serving(self, serving: bool) -> None:
        self._serving = serving
        await self._set_all(SERVING if serving else NOT_SERVING)

    async def stop(self, grace: float | None = None) -> None:
        """Report NOT_SERVING, drain in-flight calls for ``grace`` seconds, stop."""
        self._serving = False
        await self.health.enter_graceful_shutdown()
        await self._server.stop(self.settings.server.grace_seconds if grace is None else grace)
        if self._side_port is not None:
            await asyncio.to_thread(self._side_port.stop)  # shutdown() waits for the serve loop
            self._side_port = None

    def bound(self) -> Bound:
        server = self.settings.server
        host = server.advertise_host or server.host
        if host in ("0.0.0.0", "::", ""):
            host = socket.gethostname()
        return Bound(host, self.port, self.metrics_port, self.instance, self.registry)


def _write_ready_file(path: Path, hosts: Sequence[GrpcHost]) -> None:
    """The ports a launcher waits for: the first (or only) host's at the top level, and
    every host's under ``services`` by service name (a co-hosting process serves several)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    first = hosts[0]
    ready = {
        "grpc_port": first.port,
        "metrics_port": first.metrics_port,
        "token_port": first.token_port_bound,
        "pid": os.getpid(),
        "services": {host.service: {"grpc_port": host.port, "metrics_port": host.metrics_port} for host in hosts},
    }
    tmp.write_text(json.dumps(ready))
    tmp.replace(path)


def _remove_ready_file(path: Path) -> None:
    path.unlink(missing_ok=True)


@dataclass
class _Served:
    """One app on its own host while it runs (its etcd endpoint once registered)."""

    app: ServiceApp
    host: GrpcHost
    endpoint: ServiceEndpointRegistration | None = None


# Builds the next app of a process from the addresses of those already serving in it
# (service name -> host:port): co-hosted managers find StateService and each other.
AppStarter = Callable[[dict[str, str]], tuple[ServiceApp, ProcessSettings]]


async def serve(app: ServiceApp, settings: ProcessSettings) -> None:
    """Run ``app`` until SIGTERM/SIGINT, then drain within the grace period."""
    await serve_apps([lambda _: (app, settings)], settings.server.ready_file)


async def serve_apps(starters: Sequence[AppStarter], ready_file: Path | None) -> None:
    """Run several apps in this process, each on its own host (port, identity, health,
    metrics and authorization table), started in order; the ready file is written once
    all serve. SIGTERM/SIGINT stops them in the reverse order, each drained within its
    grace period; every app asked to resign (``before_drain``) first."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    served: list[_Served] = []
    addresses: dict[str, str] = {}
    try:
        for starter in starters:
            app, settings = starter(dict(addresses))
            host = GrpcHost(
                app.name,
                app.registrations,
                settings,
                routes=getattr(app, "http_routes", None),
                security=getattr(app, "security", None),
                token_port=getattr(app, "token_port", None),
                access=getattr(app, "access", None),
                audit=getattr(app, "audit", None),
            )
            await host.start()
            one = _Served(app, host)
            served.append(one)  # from here on, stopped in the finally whatever happens next
            bound = host.bound()
            await app.start(bound)
            await host.set_serving(True)
            if settings.etcd.register_service and getattr(app, "registers_endpoint", True):
                one.endpoint = ServiceEndpointRegistration(settings.etcd, app.name, bound)
                await one.endpoint.start()
            addresses[app.name] = bound.address
            log.info("%s serving as %s", app.name, host.instance)
        if ready_file:
            _write_ready_file(ready_file, [one.host for one in served])
        await stop.wait()
        for one in served:
            log.info("%s shutting down (grace %.1fs)", one.app.name, one.host.settings.server.grace_seconds)
    finally:
        for one in served:
            before_drain = getattr(one.app, "before_drain", None)
            if before_drain is not None:
                await before_drain()  # e.g. resign leadership at once, not after the grace period
        for one in reversed(served):
            if one.endpoint is not None:
                await one.endpoint.stop()  # clients stop finding us before we drain
            await one.host.stop()
            await one.app.stop()
            log.info("%s stopped", one.app.name)
        if ready_file:
            _remove_ready_file(ready_file)


def registration(full_name: str, servicer: Any) -> ServiceRegistration:
    """Register ``servicer`` as the service ``full_name`` using its generated add function."""
    from ringrift_runtime.grpc.contracts import generated_grpc_module

    short = full_name.rpartition(".")[2]
    add = getattr(generated_grpc_module(full_name), f"add_{short}Servicer_to_server")
    return ServiceRegistration(full_name, servicer, add)


def unimplemented_servicer(full_name: str) -> Any:
    """The generated base servicer: every method answers UNIMPLEMENTED."""
    from ringrift_runtime.grpc.contracts import generated_grpc_module

    short = full_name.rpartition(".")[2]
    return getattr(generated_grpc_module(full_name), f"{short}Servicer")()


def placeholder_app(name: str) -> StaticApp:
    """An app serving the process's service with every RPC answering UNIMPLEMENTED."""
    from ringrift_runtime.grpc.contracts import SERVICE_BY_PROCESS

    full_name = SERVICE_BY_PROCESS[name]
    return StaticApp(name, [registration(full_name, unimplemented_servicer(full_name))])
