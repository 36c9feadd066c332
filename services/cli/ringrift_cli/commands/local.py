"""A local cluster of processes on this machine: up, down."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import typer
from rich.table import Table

from ringrift.common.v1 import common_pb2
from ringrift.orchestrator.v1 import orchestrator_pb2
from ringrift_cli import credentials
from ringrift_cli.console import console, err, fail
from ringrift_cli.gateway import DEFAULT_DIR, fetch_status
from ringrift_cli.local_cluster import LocalCluster, read_cluster_file, settings_to_pass_on, stop_from_file
from ringrift_cli.render import render_status
from ringrift_client import AsyncClient, RingriftError
from ringrift_runtime.local.etcd import EtcdNotFound, find_etcd, install_etcd
from ringrift_runtime.settings import SettingsError, settings_in_environment


def wait_for_cluster(
    cluster: LocalCluster, agents: int, timeout: float = 30.0
) -> orchestrator_pb2.GetClusterStatusResponse:
    deadline = time.monotonic() + timeout
    reply = None
    while time.monotonic() < deadline:
        try:
            reply = asyncio.run(fetch_status(cluster.gateway_address, 5, cluster.root))
            if reply.leader_id and len(reply.nodes) >= agents:
                return reply
        except RingriftError:
            pass
        time.sleep(0.2)
    if reply is None:
        raise RuntimeError("the gateway never answered")
    return reply


class TrainingProgress:
    """Promotions and ratings as they happen, read from the gateway."""

    def __init__(self, address: str, directory: Path) -> None:
        self._address = address
        self._directory = directory
        self._seen: set[str] = set()
        self._started = time.monotonic()

    def _fetch(self):
        async def fetch():
            async with AsyncClient(credentials.context(self._address, self._directory)) as client:
                models = await client.list_models(
                    orchestrator_pb2.ListModelsRequest(statuses=[common_pb2.MODEL_STATUS_PROMOTED]), timeout=5
                )
                ratings = await client.list_ratings(orchestrator_pb2.ListRatingsRequest(), timeout=5)
                return models, ratings

        try:
            return asyncio.run(fetch())
        except RingriftError:
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
            out.print(
                f"[{time.monotonic() - self._started:5.0f} s] {model.config_key}: generation "
                f"{model.generation} promoted ({model.model_id}{shown})"
            )

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
            table.add_row(
                model.config_key, str(model.generation), model.model_id, f"{rating:.0f}" if rating is not None else "-"
            )
        out.print(table)


def up(
    agents: int = typer.Option(3, min=1, max=32, help="number of node agents"),
    gateways: int = typer.Option(2, min=1, max=5, help="gateway replicas (they elect a leader)"),
    directory: Path = typer.Option(DEFAULT_DIR, "--dir", help="folder for state, data and logs"),
    autoscale: int = typer.Option(
        0, min=0, max=16, help="let the leader add up to this many agents when work piles up"
    ),
    traces: Path | None = typer.Option(
        None, "--traces", help="write every process's trace spans as JSON lines into this folder"
    ),
    cohost: bool = typer.Option(
        False,
        "--cohost",
        help="run StateService and the five managers in one process (each still on its own port "
        "with its own certificate): about 400 MiB less memory on one machine",
    ),
) -> None:
    """Start a local cluster (etcd, six managers, gateways, agents) and keep it running until Ctrl-C."""
    from rich.progress import Progress, SpinnerColumn, TextColumn

    directory = directory.resolve()
    try:
        passed_on = settings_to_pass_on(settings_in_environment())
    except SettingsError as exc:
        fail(f"cannot start the local cluster: {exc}", code=2)
    try:
        read_cluster_file(directory)
        err.print(f"a local cluster already runs in {directory}: stop it with `ringrift down --dir {directory}`")
        raise typer.Exit(1)
    except FileNotFoundError:
        pass
    try:
        find_etcd()
    except EtcdNotFound:
        with console.status("etcd is not installed: installing Debian's etcd-server"):
            try:
                install_etcd()
            except EtcdNotFound as exc:
                fail(str(exc))
    cluster = LocalCluster(directory, agents=agents, gateways=gateways, autoscale_extra=autoscale, cohost=cohost)
    cluster.settings_env |= passed_on  # the user's RINGRIFT_* settings, over the demo profile
    if passed_on:
        console.print(f"settings from the environment: {', '.join(passed_on)}", soft_wrap=True, highlight=False)
    if traces is not None:
        cluster.settings_env |= {
            "RINGRIFT_TRACING__EXPORTER": "file",
            "RINGRIFT_TRACING__DIRECTORY": str(traces.resolve()),
        }
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
            reply = wait_for_cluster(cluster, agents)
        render_status(reply)
        console.print(f"state, data and logs: {directory}")
        console.print(f"gateway: {cluster.gateway_address}   (ringrift status --dir {directory})")
        if cluster.dashboard_urls:
            # One unbroken line: the address carries a sign-in token and must copy whole.
            console.print(
                f"dashboard: {cluster.dashboard_urls[0]}   (every gateway replica serves one)",
                soft_wrap=True,
                highlight=False,
            )
        console.print(
            f"prometheus: prometheus --config.file={cluster.prometheus_file}", soft_wrap=True, highlight=False
        )
        console.print("self-play, training and gauntlets start by themselves; promotions show below")
        console.print("running; press Ctrl-C to stop")
        progress = TrainingProgress(cluster.gateway_address, directory)
        next_check = 0.0
        while not stopping["now"]:
            if time.monotonic() >= next_check:
                progress.report(console)
                next_check = time.monotonic() + 5
            time.sleep(0.2)
        progress.summary(console)
    except EtcdNotFound as exc:
        err.print(str(exc))
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        pass
    except (RuntimeError, TimeoutError, OSError) as exc:
        err.print(f"the local cluster failed to start: {exc}; logs are in {directory / 'logs'}")
        raise typer.Exit(1) from None
    finally:
        console.print("stopping the local cluster")
        cluster.down()


def down(
    directory: Path = typer.Option(DEFAULT_DIR, "--dir", help="folder of the local cluster"),
) -> None:
    """Stop a local cluster started by `ringrift up`."""
    try:
        stopped = stop_from_file(directory.resolve())
    except FileNotFoundError as exc:
        err.print(str(exc))
        raise typer.Exit(1) from None
    console.print(f"stopped {stopped} processes")


COMMANDS = [up, down]
