"""The ``ringrift`` command line (typer + rich)."""

from __future__ import annotations

import asyncio
import json

import grpc
import typer
from grpc_health.v1 import health_pb2, health_pb2_grpc
from rich.console import Console
from rich.table import Table

from ringrift_runtime import __version__
from ringrift_runtime.grpc.contracts import SERVICE_BY_PROCESS

app = typer.Typer(help="RingRift Orchestrator: self-play training on a cluster.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)


@app.command()
def version() -> None:
    """Print the version."""
    console.print(f"ringrift {__version__}")


async def _check(target: str, services: list[str], timeout: float) -> dict[str, str]:
    results: dict[str, str] = {}
    async with grpc.aio.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in services:
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
                results[service or "(overall)"] = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
            except grpc.aio.AioRpcError as exc:
                results[service or "(overall)"] = exc.code().name
    return results


@app.command()
def health(
    target: str = typer.Argument(..., help="host:port of a RingRift service"),
    service: str = typer.Option("", help=f"process name ({', '.join(SERVICE_BY_PROCESS)}) or full service name"),
    timeout: float = typer.Option(3.0, help="seconds to wait for an answer"),
    as_json: bool = typer.Option(False, "--json", help="print JSON for scripts"),
) -> None:
    """Ask a service for its gRPC health. Exit code 0 only when SERVING."""
    names = [""]
    if service:
        names.append(SERVICE_BY_PROCESS.get(service, service))
    results = asyncio.run(_check(target, names, timeout))
    if as_json:
        console.print_json(json.dumps(results))
    else:
        table = Table("service", "status", title=f"health of {target}")
        for name, status in results.items():
            table.add_row(name, status)
        console.print(table)
    if any(status != "SERVING" for status in results.values()):
        err.print(f"{target} is not serving: check that the process runs and its logs")
        raise typer.Exit(1)
