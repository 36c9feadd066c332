"""The ``ringrift`` command line (typer + rich)."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path

import grpc
import typer
from grpc_health.v1 import health_pb2, health_pb2_grpc
from rich.console import Console
from rich.table import Table

from ringrift.common.v1 import common_pb2
from ringrift.orchestrator.v1 import orchestrator_pb2, orchestrator_pb2_grpc
from ringrift_cli.local_cluster import LocalCluster, read_cluster_file, stop_from_file
from ringrift_runtime import __version__
from ringrift_runtime.grpc.contracts import SERVICE_BY_PROCESS
from ringrift_runtime.local.etcd import EtcdNotFound

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


DEFAULT_DIR = Path("./ringrift-local")
DEFAULT_GATEWAY = "127.0.0.1:50050"


def _gateway_address(gateway: str | None, directory: Path) -> str:
    if gateway:
        return gateway
    try:
        description = read_cluster_file(directory)
    except FileNotFoundError:
        return DEFAULT_GATEWAY
    return next(p["address"] for p in description["processes"] if p["service"] == "gateway")


async def _status(address: str, timeout: float) -> orchestrator_pb2.GetClusterStatusResponse:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
        return await stub.GetClusterStatus(orchestrator_pb2.GetClusterStatusRequest(), timeout=timeout)


def _render_status(status: orchestrator_pb2.GetClusterStatusResponse) -> None:
    leader = status.leader_id or "(none elected yet)"
    console.print(f"[bold]leader[/bold] {leader}   [bold]epoch[/bold] {status.epoch}   answered by {status.replica_id}")
    services = Table("service", "instance", "address", title="control plane")
    for endpoint in status.services:
        services.add_row(endpoint.service, endpoint.instance_id, endpoint.address)
    console.print(services)
    nodes = Table("node", "address", "GPU", "cores", "RAM GB", "CPU %", "mem %", "disk %", "jobs", title="nodes")
    for node in status.nodes:
        gpu = node.detected.gpu if node.detected.gpu.count else node.declared.gpu
        gpu_text = f"{gpu.count}x {gpu.model}" if gpu.count else "-"
        cores = node.declared.cpu_cores or node.detected.cpu_cores
        ram = (node.declared.ram_mb or node.detected.ram_mb) / 1024
        jobs = sum(node.metrics.running_jobs_by_kind.values())
        nodes.add_row(
            node.node_id, node.address, gpu_text, str(cores), f"{ram:.0f}",
            f"{node.metrics.cpu_percent:.0f}", f"{node.metrics.memory_percent:.0f}",
            f"{node.metrics.disk_percent:.0f}", str(jobs),
        )
    console.print(nodes)


@app.command()
def status(
    gateway: str = typer.Option(None, help="gateway host:port (default: the local cluster in --dir, else 127.0.0.1:50050)"),
    directory: Path = typer.Option(DEFAULT_DIR, "--dir", help="folder of a local cluster started by `ringrift up`"),
    timeout: float = typer.Option(5.0, help="seconds to wait for the gateway"),
    as_json: bool = typer.Option(False, "--json", help="print JSON for scripts"),
) -> None:
    """Leader, epoch, control plane and nodes."""
    from google.protobuf.json_format import MessageToJson

    address = _gateway_address(gateway, directory)
    try:
        reply = asyncio.run(_status(address, timeout))
    except grpc.aio.AioRpcError as exc:
        err.print(f"cannot reach the gateway at {address} ({exc.code().name}): start a cluster with `ringrift up` "
                  "or pass --gateway host:port")
        raise typer.Exit(1)
    if as_json:
        console.print_json(MessageToJson(reply))
    else:
        _render_status(reply)


def _wait_for_cluster(cluster: LocalCluster, agents: int, timeout: float = 30.0) -> orchestrator_pb2.GetClusterStatusResponse:
    deadline = time.monotonic() + timeout
    reply = None
    while time.monotonic() < deadline:
        try:
            reply = asyncio.run(_status(cluster.gateway_address, 5))
            if reply.leader_id and len(reply.nodes) >= agents:
                return reply
        except grpc.aio.AioRpcError:
            pass
        time.sleep(0.2)
    if reply is None:
        raise RuntimeError("the gateway never answered")
    return reply


class TrainingProgress:
    """Promotions and ratings as they happen, read from the gateway."""

    def __init__(self, address: str) -> None:
        self._address = address
        self._seen: set[str] = set()
        self._started = time.monotonic()

    def _fetch(self):
        async def fetch():
            async with grpc.aio.insecure_channel(self._address) as channel:
                stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
                models = await stub.ListModels(orchestrator_pb2.ListModelsRequest(
                    statuses=[common_pb2.MODEL_STATUS_PROMOTED]), timeout=5)
                ratings = await stub.ListRatings(orchestrator_pb2.ListRatingsRequest(), timeout=5)
                return models, ratings

        try:
            return asyncio.run(fetch())
        except grpc.aio.AioRpcError:
            return None

    def report(self, out) -> None:
        fetched = self._fetch()
        if fetched is None:
            return
        models, ratings = fetched
        elo = {(r.config_key, r.player): r.elo for r in ratings.ratings}
        for model in sorted(models.models, key=lambda m: (m.created_at.seconds, m.generation)):
            if model.model_id in self._seen:
                continue
            self._seen.add(model.model_id)
            rating = elo.get((model.config_key, model.model_id))
            shown = f", rating {rating:.0f}" if rating is not None else ""
            out.print(f"[{time.monotonic() - self._started:5.0f} s] {model.config_key}: generation "
                      f"{model.generation} promoted ({model.model_id}{shown})")

    def summary(self, out) -> None:
        fetched = self._fetch()
        if fetched is None or not fetched[0].models:
            return
        models, ratings = fetched
        elo = {(r.config_key, r.player): r.elo for r in ratings.ratings}
        table = Table(title="promoted generations")
        for column in ("config", "generation", "model", "rating"):
            table.add_column(column)
        for model in sorted(models.models, key=lambda m: (m.config_key, m.generation)):
            rating = elo.get((model.config_key, model.model_id))
            table.add_row(model.config_key, str(model.generation), model.model_id,
                          f"{rating:.0f}" if rating is not None else "-")
        out.print(table)


@app.command()
def up(
    agents: int = typer.Option(3, min=1, max=32, help="number of node agents"),
    gateways: int = typer.Option(2, min=1, max=5, help="gateway replicas (they elect a leader)"),
    directory: Path = typer.Option(DEFAULT_DIR, "--dir", help="folder for state, data and logs"),
) -> None:
    """Start a local cluster (etcd, six managers, gateways, agents) and keep it running until Ctrl-C."""
    from rich.progress import Progress, SpinnerColumn, TextColumn

    directory = directory.resolve()
    try:
        read_cluster_file(directory)
        err.print(f"a local cluster already runs in {directory}: stop it with `ringrift down --dir {directory}`")
        raise typer.Exit(1)
    except FileNotFoundError:
        pass
    cluster = LocalCluster(directory, agents=agents, gateways=gateways)
    stopping = {"now": False}

    def request_stop(signum, frame) -> None:
        stopping["now"] = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)  # also when started with SIGINT ignored (background jobs)
    try:
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), console=console, transient=True) as bar:
            task = bar.add_task("starting", total=None)
            cluster.up(lambda name: bar.update(task, description=f"starting {name}"))
            bar.update(task, description="waiting for a leader and the agents")
            reply = _wait_for_cluster(cluster, agents)
        _render_status(reply)
        console.print(f"state, data and logs: {directory}")
        console.print(f"gateway: {cluster.gateway_address}   (ringrift status --dir {directory})")
        console.print("self-play, training and gauntlets start by themselves; promotions show below")
        console.print("running; press Ctrl-C to stop")
        progress = TrainingProgress(cluster.gateway_address)
        next_check = 0.0
        while not stopping["now"]:
            if time.monotonic() >= next_check:
                progress.report(console)
                next_check = time.monotonic() + 5
            time.sleep(0.2)
        progress.summary(console)
    except EtcdNotFound as exc:
        err.print(str(exc))
        raise typer.Exit(1)
    except KeyboardInterrupt:
        pass
    except (RuntimeError, TimeoutError, OSError) as exc:
        err.print(f"the local cluster failed to start: {exc}; logs are in {directory / 'logs'}")
        raise typer.Exit(1)
    finally:
        console.print("stopping the local cluster")
        cluster.down()


@app.command()
def down(
    directory: Path = typer.Option(DEFAULT_DIR, "--dir", help="folder of the local cluster"),
) -> None:
    """Stop a local cluster started by `ringrift up`."""
    try:
        stopped = stop_from_file(directory.resolve())
    except FileNotFoundError as exc:
        err.print(str(exc))
        raise typer.Exit(1)
    console.print(f"stopped {stopped} processes")
