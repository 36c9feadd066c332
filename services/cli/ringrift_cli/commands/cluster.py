"""Cluster-wide commands: version, health of one process, status, nodes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import grpc
import typer
from grpc_health.v1 import health_pb2, health_pb2_grpc
from rich.table import Table

from ringrift.orchestrator.v1 import orchestrator_pb2
from ringrift_cli import credentials
from ringrift_cli.console import console, err, fail
from ringrift_cli.gateway import DIRECTORY, GATEWAY, JSON, TIMEOUT, gateway_call
from ringrift_cli.render import nodes_table, print_json, render_status, when
from ringrift_runtime import __version__
from ringrift_runtime.grpc.contracts import SERVICE_BY_PROCESS
from ringrift_runtime.security import pki
from ringrift_runtime.security.context import Security
from ringrift_runtime.security.identity import Kind, any_gateway, dns_name
from ringrift_runtime.security.tls import CertFiles, channel_credentials
from ringrift_runtime.settings import SettingsError, load_settings_of
from ringrift_settings import RingriftSettings


def version() -> None:
    """Print the version."""
    console.print(f"ringrift {__version__}")


def _health_channel(target: str, service: str) -> Any:
    """A channel for a health check: the command line's certificate when given, else the
    certificate of the process this runs beside (RINGRIFT_SECURITY__*: a container checking
    its own process), plaintext when that process is insecure."""
    options = credentials.OPTIONS
    if options.insecure:
        return grpc.aio.insecure_channel(target)
    if options.cert and options.key and options.ca:
        files = CertFiles(options.ca, options.cert, options.key)
        caller = pki.identities(files.cert.read_bytes())[0]
    else:
        try:
            security = Security.of(load_settings_of(RingriftSettings))
        except SettingsError as exc:
            fail(f"cannot check health: {exc}", 2)
        if security.insecure or security.files is None or security.identity is None:
            return grpc.aio.insecure_channel(target)
        files, caller = security.files, security.identity
    if service in ("gateway", SERVICE_BY_PROCESS["gateway"]):
        server_name = any_gateway(caller.cluster)
    elif service in SERVICE_BY_PROCESS and service != "agent":
        server_name = dns_name(Kind.SERVICE, service, caller.cluster)
    else:
        server_name = caller.dns  # a process checking itself
    return grpc.aio.secure_channel(
        target, channel_credentials(files), options=[("grpc.ssl_target_name_override", server_name)]
    )


async def check_health(target: str, services: list[str], timeout: float, service: str = "") -> dict[str, str]:
    results: dict[str, str] = {}
    async with _health_channel(target, service) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in services:
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
                results[service or "(overall)"] = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
            except grpc.aio.AioRpcError as exc:
                results[service or "(overall)"] = exc.code().name
    return results


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
    results = asyncio.run(check_health(target, names, timeout, service))
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


def status(gateway: str = GATEWAY, directory: Path = DIRECTORY, timeout: float = TIMEOUT, as_json: bool = JSON) -> None:
    """Leader, epoch, control plane, nodes, jobs, loops and training per config."""
    reply = gateway_call(
        gateway,
        directory,
        timeout,
        lambda client, t: client.get_cluster_status(orchestrator_pb2.GetClusterStatusRequest(), timeout=t),
    )
    print_json(reply) if as_json else render_status(reply)


nodes_app = typer.Typer(help="Cluster members: list (the default), quarantine, lift.")


@nodes_app.callback(invoke_without_command=True)
def nodes(
    ctx: typer.Context,
    include_all: bool = typer.Option(False, "--all", help="include draining and quarantined nodes"),
    gateway: str = GATEWAY,
    directory: Path = DIRECTORY,
    timeout: float = TIMEOUT,
    as_json: bool = JSON,
) -> None:
    """Cluster members with their capabilities and load (the default)."""
    if ctx.invoked_subcommand:
        return
    reply = gateway_call(
        gateway,
        directory,
        timeout,
        lambda client, t: client.list_nodes(
            orchestrator_pb2.ListNodesRequest(include_unschedulable=include_all), timeout=t
        ),
    )
    if as_json:
        print_json(reply)
        return
    console.print(nodes_table(reply.nodes))
    if reply.reservations:
        table = Table("node", "holder", "expires", title="reservations")
        for r in reply.reservations:
            table.add_row(r.node_id, r.holder, when(r.expires_at))
        console.print(table)
    if reply.quarantines:
        table = Table("node", "until", "by", "reason", title="quarantined")
        for q in reply.quarantines:
            table.add_row(q.node_id, when(q.until), q.by, q.reason)
        console.print(table)


@nodes_app.command()
def quarantine(
    node: str = typer.Argument(..., help="the node id"),
    reason: str = typer.Option(..., help="why it takes no work (kept with the quarantine and in its event)"),
    hours: float = typer.Option(0.0, help="how long (default: the cluster's, a day); it ends by itself"),
    gateway: str = GATEWAY,
    directory: Path = DIRECTORY,
    timeout: float = TIMEOUT,
    as_json: bool = JSON,
) -> None:
    """Quarantine a node: it takes no new work (its running jobs finish) until the
    quarantine ends or is lifted."""
    if hours < 0 or hours * 3600 > 2**32 - 1:
        fail("--hours must be 0 (the default) or a positive number of hours")
    request = orchestrator_pb2.QuarantineNodeRequest(node_id=node, reason=reason, duration_seconds=round(hours * 3600))
    reply = gateway_call(gateway, directory, timeout, lambda client, t: client.quarantine_node(request, timeout=t))
    if as_json:
        print_json(reply)
        return
    console.print(f"{node}: quarantined until {when(reply.quarantine.until)} ({reply.quarantine.reason})")


@nodes_app.command()
def lift(
    node: str = typer.Argument(..., help="the node id"),
    gateway: str = GATEWAY,
    directory: Path = DIRECTORY,
    timeout: float = TIMEOUT,
    as_json: bool = JSON,
) -> None:
    """End a node's quarantine."""
    request = orchestrator_pb2.LiftQuarantineRequest(node_id=node)
    reply = gateway_call(gateway, directory, timeout, lambda client, t: client.lift_quarantine(request, timeout=t))
    if as_json:
        print_json(reply)
        return
    console.print(f"{node}: quarantine lifted" if reply.lifted else f"{node} was not quarantined")


COMMANDS = [version, health, status]
