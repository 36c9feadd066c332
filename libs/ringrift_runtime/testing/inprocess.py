"""Run servicers in-process on port 0 with the same interceptors, health and reflection
as a real process."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import AsyncIterator, Sequence

from ringrift_runtime.grpc.server import GrpcHost, ServiceRegistration
from ringrift_runtime.settings import RingriftSettings


@asynccontextmanager
async def serve_in_process(
    registrations: Sequence[ServiceRegistration],
    settings: RingriftSettings | None = None,
    name: str = "test",
) -> AsyncIterator[GrpcHost]:
    """Serve ``registrations`` on 127.0.0.1:<free port>; yields the host (``host.address``)."""
    if settings is None:
        settings = RingriftSettings(server={"port": 0}, metrics={"enabled": False})
    host = GrpcHost(name, registrations, settings, port=0)
    await host.start()
    await host.set_serving(True)
    try:
        yield host
    finally:
        await host.stop(grace=0.5)
