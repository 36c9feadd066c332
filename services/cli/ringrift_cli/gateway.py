"""How the command line reaches the gateway: through ringrift_client only, at --gateway or
the local cluster's address; a failed call becomes one line and an exit code (2 when the gateway
refused the request, 1 when it could not be reached or failed)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import grpc
import typer

from ringrift.orchestrator.v1 import orchestrator_pb2
from ringrift_cli import credentials
from ringrift_cli.console import fail
from ringrift_cli.local_cluster import read_cluster_file
from ringrift_client import AsyncClient, ConfigError, RingriftError
from ringrift_runtime.settings import DEFAULT_PORTS

T = TypeVar("T")
DEFAULT_DIR = Path("./ringrift-local")
DEFAULT_GATEWAY = f"127.0.0.1:{DEFAULT_PORTS['gateway']}"

# Options every gateway command takes.
GATEWAY = typer.Option(
    None, "--gateway", help="gateway host:port (default: the local cluster in --dir, else 127.0.0.1:50050)"
)


DIRECTORY = typer.Option(DEFAULT_DIR, "--dir", help="folder of a local cluster started by `ringrift up`")


TIMEOUT = typer.Option(10.0, "--timeout", help="seconds to wait for the gateway")


JSON = typer.Option(False, "--json", help="print JSON for scripts")


UNREACHABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
REFUSED = (
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.ALREADY_EXISTS,
)


def gateway_address(gateway: str | None, directory: Path) -> str:
    if gateway:
        return gateway
    try:
        description = read_cluster_file(directory)
    except FileNotFoundError:
        return DEFAULT_GATEWAY
    return next(p["address"] for p in description["processes"] if p["service"] == "gateway")


async def fetch_status(address: str, timeout: float, directory: Path) -> orchestrator_pb2.GetClusterStatusResponse:
    async with AsyncClient(credentials.context(address, directory)) as client:
        return await client.get_cluster_status(timeout=timeout)


def gateway_call(
    gateway: str | None, directory: Path, timeout: float, operation: Callable[[AsyncClient, float], Awaitable[T]]
) -> T:
    """Run ``operation(client, timeout)`` against the gateway (a ringrift_client
    AsyncClient); a failure becomes one line saying what to do, and a non-zero exit (2 for
    a request the gateway refused as invalid or unknown, 1 otherwise)."""
    address = gateway_address(gateway, directory)

    async def run() -> T:
        async with AsyncClient(credentials.context(address, directory)) as client:
            return await operation(client, timeout)

    try:
        return asyncio.run(run())
    except ConfigError as exc:
        fail(str(exc), 2)
    except RingriftError as exc:
        if exc.code in UNREACHABLE and "gateway" not in exc.message:
            fail(
                f"cannot reach the gateway at {address} ({exc.code.name}): start a cluster with `ringrift up` "
                "or pass --gateway host:port"
            )
        fail(f"{exc.code.name.lower().replace('_', ' ')}: {exc.message}", 2 if exc.code in REFUSED else 1)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
