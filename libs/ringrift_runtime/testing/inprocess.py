"""Run servicers in-process on port 0 with the same interceptors, health and reflection
as a real process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from ringrift_runtime.grpc.server import AccessTable, GrpcHost, ServiceRegistration
from ringrift_runtime.settings import ProcessSettings


@asynccontextmanager
async def serve_in_process(
    registrations: Sequence[ServiceRegistration],
    settings: ProcessSettings | None = None,
    name: str = "test",
    access: AccessTable | None = None,
    token_port: int | None = None,
) -> AsyncIterator[GrpcHost]:
    """Serve ``registrations`` on 127.0.0.1:<free port>; yields the host (``host.address``;
    ``host.token_port_bound`` when a ``token_port`` was asked for, 0 for any free one)."""
    if settings is None:
        settings = ProcessSettings(server={"port": 0}, metrics={"enabled": False}, security={"insecure": True})
    host = GrpcHost(name, registrations, settings, port=0, access=access, token_port=token_port)
    await host.start()
    await host.set_serving(True)
    try:
        yield host
    finally:
        await host.stop(grace=0.5)


class AnyIdentity:
    """An access table for tests of the runtime itself: every caller with an identity of
    the cluster may call everything (the real table is ringrift_contracts.access)."""

    @staticmethod
    def allowed(method: str, identity: object) -> bool:
        return identity is not None

    @staticmethod
    def needs_identity(method: str) -> bool:
        return True
