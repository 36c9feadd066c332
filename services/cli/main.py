"""The ``ringrift`` command line (typer + rich)."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, NoReturn, TypeVar

import grpc
import typer
from grpc_health.v1 import health_pb2, health_pb2_grpc
from rich.console import Console
from rich.table import Table

from ringrift.common.v1 import common_pb2
from ringrift.nodes.v1 import nodes_pb2
from ringrift.orchestrator.v1 import orchestrator_pb2, orchestrator_pb2_grpc
from ringrift_cli.local_cluster import LocalCluster, read_cluster_file, stop_from_file
from ringrift_runtime import __version__
from ringrift_runtime.grpc.contracts import SERVICE_BY_PROCESS
from ringrift_runtime.local.etcd import EtcdNotFound, find_etcd, install_etcd

app = typer.Typer(help="RingRift Orchestrator: self-play training on a cluster.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)
T = TypeVar("T")


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


# Options every gateway command takes.
GATEWAY = typer.Option(None, "--gateway", help="gateway host:port (default: the local cluster in --dir, else 127.0.0.1:50050)")
DIRECTORY = typer.Option(DEFAULT_DIR, "--dir", help="folder of a local cluster started by `ringrift up`")
TIMEOUT = typer.Option(10.0, "--timeout", help="seconds to wait for the gateway")
JSON = typer.Option(False, "--json", help="print JSON for scripts")
UNREACHABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def _fail(message: str, code: int = 1) -> NoReturn:
    err.print(message, highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _gateway_call(gateway: str | None, directory: Path, timeout: float, operation: Callable[[Any, float], Awaitable[T]]) -> T:
    """Run ``operation(stub, timeout)`` against the gateway; a failure becomes one line
    saying what to do, and a non-zero exit (2 for a request the gateway refused as
    invalid or unknown, 1 otherwise)."""
    address = _gateway_address(gateway, directory)

    async def run() -> T:
        async with grpc.aio.insecure_channel(address) as channel:
            return await operation(orchestrator_pb2_grpc.OrchestratorServiceStub(channel), timeout)

    try:
        return asyncio.run(run())
    except grpc.aio.AioRpcError as exc:
        if exc.code() in UNREACHABLE and "gateway" not in (exc.details() or ""):
            _fail(f"cannot reach the gateway at {address} ({exc.code().name}): start a cluster with `ringrift up` "
                  "or pass --gateway host:port")
        refused = exc.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
                                 grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.ALREADY_EXISTS)
        _fail(f"{exc.code().name.lower().replace('_', ' ')}: {exc.details()}", 2 if refused else 1)
    except KeyboardInterrupt:
        raise typer.Exit(130)


def _print_json(message_or_list) -> None:
    from google.protobuf.json_format import MessageToDict

    if isinstance(message_or_list, list):
        data = [MessageToDict(m) for m in message_or_list]
    else:
        data = MessageToDict(message_or_list)
    console.print_json(json.dumps(data))


def _when(stamp) -> str:
    if not stamp.seconds:
        return "-"
    return time.strftime("%H:%M:%S", time.localtime(stamp.seconds))


def _ago(stamp) -> str:
    if not stamp.seconds:
        return "-"
    seconds = max(0, time.time() - stamp.seconds)
    return f"{seconds:.0f} s ago" if seconds < 120 else f"{seconds / 60:.0f} min ago"


def _label(enum, prefix: str, value: int) -> str:
    """JOB_STATE_PENDING -> ``pending`` and so on: how every enum value is shown (and typed)."""
    return enum.Name(value).removeprefix(prefix).lower()


def _state_name(state: int) -> str:
    return _label(common_pb2.JobState, "JOB_STATE_", state)


def _nodes_table(nodes) -> Table:
    table = Table("node", "address", "GPU", "cores", "RAM GB", "CPU %", "mem %", "disk %", "jobs", title="nodes")
    for node in nodes:
        gpu = node.detected.gpu if node.detected.gpu.count else node.declared.gpu
        gpu_text = f"{gpu.count}x {gpu.model}" if gpu.count else "-"
        cores = node.declared.cpu_cores or node.detected.cpu_cores
        ram = (node.declared.ram_mb or node.detected.ram_mb) / 1024
        jobs = ", ".join(f"{k} {v}" for k, v in sorted(node.metrics.running_jobs_by_kind.items()) if v) or "-"
        name = node.node_id + (" (draining)" if node.draining else "") + (" (quarantined)" if node.quarantined else "")
        table.add_row(
            name, node.address, gpu_text, str(cores), f"{ram:.0f}",
            f"{node.metrics.cpu_percent:.0f}", f"{node.metrics.memory_percent:.0f}",
            f"{node.metrics.disk_percent:.0f}", jobs,
        )
    return table


LOOP_HEALTH_STYLE = {"healthy": "green", "degraded": "red", "paused": "yellow", "stopped": "dim"}


def _loops_table(loops) -> Table:
    table = Table("loop", "health", "every", "runs", "errors", "last run", "last error", title="loops (as the leader sees them)")
    for loop in loops:
        health = _label(orchestrator_pb2.LoopHealth, "LOOP_HEALTH_", loop.health)
        table.add_row(loop.name, f"[{LOOP_HEALTH_STYLE.get(health, '')}]{health}[/]", f"{loop.interval_seconds:g} s",
                      str(loop.runs), str(loop.consecutive_errors), _ago(loop.last_run_at), loop.last_error[:60])
    return table


def _render_status(status: orchestrator_pb2.GetClusterStatusResponse) -> None:
    leader = status.leader_id or "(none elected yet)"
    console.print(f"[bold]leader[/bold] {leader}   [bold]epoch[/bold] {status.epoch}   answered by {status.replica_id}")
    services = Table("service", "instance", "address", title="control plane")
    for endpoint in status.services:
        services.add_row(endpoint.service, endpoint.instance_id, endpoint.address)
    console.print(services)
    console.print(_nodes_table(status.nodes))
    if status.jobs:
        by_state: dict[str, dict[str, int]] = {}
        for count in status.jobs:
            by_state.setdefault(count.kind, {})[_state_name(count.state)] = count.count
        states = sorted({s for per in by_state.values() for s in per})
        jobs = Table("kind", *states, title="jobs")
        for kind, per in sorted(by_state.items()):
            jobs.add_row(kind, *(str(per.get(s, 0)) for s in states))
        console.print(jobs)
    if status.loops:
        console.print(_loops_table(status.loops))
    if status.games_by_config or status.best_model_by_config:
        configs = Table("config", "games", "best model", title="training")
        for config in sorted(set(status.games_by_config) | set(status.best_model_by_config)):
            configs.add_row(config, str(status.games_by_config.get(config, 0)), status.best_model_by_config.get(config, "-"))
        console.print(configs)


@app.command()
def status(gateway: str = GATEWAY, directory: Path = DIRECTORY, timeout: float = TIMEOUT, as_json: bool = JSON) -> None:
    """Leader, epoch, control plane, nodes, jobs, loops and training per config."""
    reply = _gateway_call(gateway, directory, timeout,
                          lambda stub, t: stub.GetClusterStatus(orchestrator_pb2.GetClusterStatusRequest(), timeout=t))
    _print_json(reply) if as_json else _render_status(reply)


@app.command()
def nodes(
    include_all: bool = typer.Option(False, "--all", help="include draining and quarantined nodes"),
    gateway: str = GATEWAY, directory: Path = DIRECTORY, timeout: float = TIMEOUT, as_json: bool = JSON,
) -> None:
    """Cluster members with their capabilities and load."""
    reply = _gateway_call(gateway, directory, timeout, lambda stub, t: stub.ListNodes(
        orchestrator_pb2.ListNodesRequest(include_unschedulable=include_all), timeout=t))
    if as_json:
        _print_json(reply)
        return
    console.print(_nodes_table(reply.nodes))
    if reply.reservations:
        table = Table("node", "holder", "expires", title="reservations")
        for r in reply.reservations:
            table.add_row(r.node_id, r.holder, _when(r.expires_at))
        console.print(table)


def _enum_values(enum, prefix: str, names: list[str], what: str) -> list[int]:
    """``pending`` -> JOB_STATE_PENDING and so on; an unknown name ends the command with
    the names it accepts."""
    values = []
    for name in names:
        try:
            values.append(enum.Value(prefix + name.upper()))
        except ValueError:
            known = ", ".join(_label(enum, prefix, v) for v in enum.values()[1:])
            _fail(f"unknown {what} {name!r}: use one of {known}", 2)
    return values


def _job_states(names: list[str]) -> list[int]:
    return _enum_values(common_pb2.JobState, "JOB_STATE_", names, "job state")


@app.command()
def jobs(
    state: list[str] = typer.Option([], "--state", help="only jobs in this state (repeatable): pending, running, ..."),
    kind: str = typer.Option("", help="only this job kind"),
    config: str = typer.Option("", help="only this config key, e.g. square8_2p"),
    node: str = typer.Option("", help="only jobs on this node"),
    limit: int = typer.Option(50, min=1, max=1000, help="at most this many jobs"),
    gateway: str = GATEWAY, directory: Path = DIRECTORY, timeout: float = TIMEOUT, as_json: bool = JSON,
) -> None:
    """Jobs, newest first, by state, kind, config or node."""
    request = orchestrator_pb2.ListJobsRequest(states=_job_states(state), kind=kind, config_key=config, node_id=node,
                                               page=common_pb2.PageRequest(page_size=limit))
    reply = _gateway_call(gateway, directory, timeout, lambda stub, t: stub.ListJobs(request, timeout=t))
    if as_json:
        _print_json(list(reply.jobs))
        return
    table = Table("job", "kind", "config", "state", "node", "attempt", "updated", "error", title="jobs")
    for job in reply.jobs:
        table.add_row(job.job_id, job.spec.kind, job.spec.config_key or "-", _state_name(job.state), job.node_id or "-",
                      str(job.attempt), _ago(job.updated_at), job.error[:50])
    console.print(table)
    if reply.next_page_token:
        console.print(f"(more jobs: raise --limit, now {limit})")


def _params(pairs: list[str]) -> dict[str, str]:
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            _fail(f"--param {pair!r} is not key=value (for example --param games=100)", 2)
        params[key] = value
    return params


def _spec(kind: str, config: str, param: list[str], node: list[str]) -> common_pb2.JobSpec:
    return common_pb2.JobSpec(kind=kind, config_key=config, params=_params(param),
                              requirements=common_pb2.ResourceRequirements(required_node_ids=node))


@app.command()
def submit(
    kind: str = typer.Argument(..., help="job kind from the agents' catalog, e.g. selfplay, export, train, gauntlet"),
    config: str = typer.Option("", help="config key, e.g. square8_2p"),
    param: list[str] = typer.Option([], "--param", "-p", help="template parameter key=value (repeatable)"),
    node: list[str] = typer.Option([], "--node", help="run only on this node (repeatable)"),
    key: str = typer.Option("", "--idempotency-key", help="submitting again with the same key returns the same job"),
    gateway: str = GATEWAY, directory: Path = DIRECTORY, timeout: float = TIMEOUT, as_json: bool = JSON,
) -> None:
    """Submit a job; the leader dispatches it to the best node."""
    request = orchestrator_pb2.SubmitJobRequest(spec=_spec(kind, config, param, node), idempotency_key=key)
    reply = _gateway_call(gateway, directory, timeout, lambda stub, t: stub.SubmitJob(request, timeout=t))
    if as_json:
        _print_json(reply)
    else:
        console.print(f"{'submitted' if reply.created else 'already submitted'} {reply.job.job_id} "
                      f"({_state_name(reply.job.state)}); follow it with `ringrift logs {reply.job.job_id} --follow`")


@app.command()
def cancel(
    job_id: str = typer.Argument(..., help="the job to cancel"),
    reason: str = typer.Option("cancelled from the CLI", help="why, for the job's record"),
    gateway: str = GATEWAY, directory: Path = DIRECTORY, timeout: float = TIMEOUT, as_json: bool = JSON,
) -> None:
    """Cancel a job (its process is stopped on its node)."""
    reply = _gateway_call(gateway, directory, timeout, lambda stub, t: stub.CancelJob(
        orchestrator_pb2.CancelJobRequest(job_id=job_id, reason=reason), timeout=t))
    _print_json(reply) if as_json else console.print(f"{reply.job.job_id}: {_state_name(reply.job.state)}")


@app.command()
def job(
    job_id: str = typer.Argument(..., help="the job"),
    gateway: str = GATEWAY, directory: Path = DIRECTORY, timeout: float = TIMEOUT, as_json: bool = JSON,
) -> None:
    """One job with its attempts and result."""
    reply = _gateway_call(gateway, directory, timeout, lambda stub, t: stub.GetJob(
        orchestrator_pb2.GetJobRequest(job_id=job_id), timeout=t))
    if as_json:
        _print_json(reply)
        return
    j = reply.job
    console.print(f"[bold]{j.job_id}[/bold] {j.spec.kind} {j.spec.config_key} - {_state_name(j.state)}"
                  + (f" on {j.node_id}" if j.node_id else "") + (f": {j.error}" if j.error else ""))
    console.print("params: " + (", ".join(f"{k}={v}" for k, v in sorted(j.spec.params.items())) or "-"))
    table = Table("attempt", "node", "state", "started", "finished", "exit", "error", title="attempts")
    for a in j.attempts:
        table.add_row(str(a.attempt), a.node_id or "-", _state_name(a.state), _when(a.started_at), _when(a.finished_at),
                      str(a.exit_code), a.error[:60])
    console.print(table)
    if j.result_json:
        console.print("result: " + j.result_json[:2000], highlight=False)


@app.command()
def logs(
    job_id: str = typer.Argument(..., help="the job"),
    follow: bool = typer.Option(False, "--follow", "-f", help="keep printing until the job ends"),
    attempt: int = typer.Option(0, help="attempt number (default: the latest)"),
    gateway: str = GATEWAY, directory: Path = DIRECTORY, timeout: float = TIMEOUT,
) -> None:
    """A job's output, from the node that ran it."""
    request = orchestrator_pb2.StreamJobLogsRequest(job_id=job_id, attempt=attempt, follow=follow)

    async def stream(stub, t):
        async for chunk in stub.StreamJobLogs(request, timeout=None if follow else t):
            target = sys.stderr.buffer if chunk.stderr else sys.stdout.buffer
            target.write(chunk.data)
            target.flush()

    _gateway_call(gateway, directory, timeout, stream)


@app.command()
def models(
    config: str = typer.Option("", help="only this config key"),
    gateway: str = GATEWAY, directory: Path = DIRECTORY, timeout: float = TIMEOUT, as_json: bool = JSON,
) -> None:
    """Models of the registry, with the best one per config."""
    reply = _gateway_call(gateway, directory, timeout, lambda stub, t: stub.ListModels(
        orchestrator_pb2.ListModelsRequest(config_key=config), timeout=t))
    if as_json:
        _print_json(reply)
        return
    best = set(reply.best_model_by_config.values())
    table = Table("config", "gen", "model", "status", "games", "created", "reason", title="models (* best)")
    for m in sorted(reply.models, key=lambda m: (m.config_key, m.generation)):
        status = _label(common_pb2.ModelStatus, "MODEL_STATUS_", m.status)
        table.add_row(m.config_key, str(m.generation), m.model_id + (" *" if m.model_id in best else ""), status,
                      str(m.training_games), _when(m.created_at), m.status_reason[:60])
    console.print(table)


@app.command()
def elo(
    config: str = typer.Option("", help="only this config key"),
    history: bool = typer.Option(False, "--history", help="every fit, not only the latest"),
    gateway: str = GATEWAY, directory: Path = DIRECTORY, timeout: float = TIMEOUT, as_json: bool = JSON,
) -> None:
    """Ratings per config (maximum likelihood over all matches, anchored on random)."""
    reply = _gateway_call(gateway, directory, timeout, lambda stub, t: stub.ListRatings(
        orchestrator_pb2.ListRatingsRequest(config_key=config, include_history=history), timeout=t))
    if as_json:
        _print_json(reply)
        return
    table = Table("config", "player", "elo", "+-", "games", "fitted", title="ratings")
    for r in sorted(reply.ratings, key=lambda r: (r.config_key, r.fitted_at.seconds, -r.elo)):
        table.add_row(r.config_key, r.player, f"{r.elo:.0f}", f"{r.stderr:.0f}", str(r.games), _when(r.fitted_at))
    console.print(table)


@app.command()
def train(
    config: str = typer.Argument(..., help="config key to train, e.g. square8_2p"),
    force: bool = typer.Option(False, help="train even if the config is not ready"),
    gateway: str = GATEWAY, directory: Path = DIRECTORY, timeout: float = TIMEOUT,
) -> None:
    """Ask for training of a config; the leader starts it on its next round."""
    reply = _gateway_call(gateway, directory, timeout, lambda stub, t: stub.TriggerTraining(
        orchestrator_pb2.TriggerTrainingRequest(config_key=config, force=force), timeout=t))
    console.print(reply.reason)


loops_app = typer.Typer(help="Background loops of the leading gateway: list, pause, resume.")
app.add_typer(loops_app, name="loops")


@loops_app.callback(invoke_without_command=True)
def loops_list(
    ctx: typer.Context,
    gateway: str = GATEWAY, directory: Path = DIRECTORY, timeout: float = TIMEOUT, as_json: bool = JSON,
) -> None:
    """List the loops with their health (the default)."""
    if ctx.invoked_subcommand:
        return
    reply = _gateway_call(gateway, directory, timeout, lambda stub, t: stub.ListLoops(
        orchestrator_pb2.ListLoopsRequest(), timeout=t))
    _print_json(list(reply.loops)) if as_json else console.print(_loops_table(reply.loops))


def _set_loop(name: str, paused: bool, gateway: str | None, directory: Path, timeout: float) -> None:
    method, request = ("PauseLoop", orchestrator_pb2.PauseLoopRequest) if paused else \
        ("ResumeLoop", orchestrator_pb2.ResumeLoopRequest)
    reply = _gateway_call(gateway, directory, timeout,
                          lambda stub, t: getattr(stub, method)(request(name=name), timeout=t))
    console.print(f"{reply.loop.name}: {'paused' if paused else 'resumed'}")


@loops_app.command("pause")
def loops_pause(
    name: str = typer.Argument(..., help="loop name, e.g. QueuePopulator"),
    gateway: str = GATEWAY, directory: Path = DIRECTORY, timeout: float = TIMEOUT,
) -> None:
    """Pause a loop (it stays paused across a change of leader)."""
    _set_loop(name, True, gateway, directory, timeout)


@loops_app.command("resume")
def loops_resume(
    name: str = typer.Argument(..., help="loop name, e.g. QueuePopulator"),
    gateway: str = GATEWAY, directory: Path = DIRECTORY, timeout: float = TIMEOUT,
) -> None:
    """Resume a paused loop."""
    _set_loop(name, False, gateway, directory, timeout)


def _event_types(names: list[str]) -> list[int]:
    return _enum_values(common_pb2.EventType, "EVENT_TYPE_", names, "event type")


@app.command()
def events(
    follow: bool = typer.Option(False, "--follow", "-f", help="keep printing new events"),
    from_sequence: int = typer.Option(0, "--from", help="events after this sequence number"),
    event_type: list[str] = typer.Option([], "--type", help="only this type (repeatable), e.g. model_promoted"),
    limit: int = typer.Option(50, min=1, help="without --follow: the last this many events"),
    gateway: str = GATEWAY, directory: Path = DIRECTORY, timeout: float = TIMEOUT, as_json: bool = JSON,
) -> None:
    """The cluster's event log; with --follow, live (resumable by --from)."""
    request = orchestrator_pb2.WatchEventsRequest(from_sequence=from_sequence,
                                                  filter=common_pb2.EventFilter(types=_event_types(event_type)))

    def show(event) -> None:
        if as_json:
            from google.protobuf.json_format import MessageToJson

            print(MessageToJson(event, indent=None), flush=True)
            return
        kind = _label(common_pb2.EventType, "EVENT_TYPE_", event.type)
        attributes = " ".join(f"{k}={v}" for k, v in sorted(event.attributes.items()))
        console.print(f"{event.sequence:>7} {_when(event.time)} [bold]{kind}[/bold] {event.subject} {attributes}",
                      highlight=False, soft_wrap=True)

    async def watch(stub, t):
        last: list = []
        call = stub.WatchEvents(request, timeout=None if follow else t)
        if follow:
            async for item in call:
                show(item.event)
            return
        # Without --follow: read what is there now (the stream goes live after the backlog).
        try:
            while True:
                item = await asyncio.wait_for(call.read(), 1.0)
                if item is grpc.aio.EOF:
                    break
                last.append(item.event)
                last = last[-limit:]
        except TimeoutError:
            call.cancel()
        for event in last:
            show(event)

    _gateway_call(gateway, directory, timeout, watch)


explain_app = typer.Typer(help="Why a job would run where, and why self-play is allocated as it is.")
app.add_typer(explain_app, name="explain")


@explain_app.command("placement")
def explain_placement(
    kind: str = typer.Argument(..., help="job kind, e.g. train"),
    config: str = typer.Option("", help="config key"),
    param: list[str] = typer.Option([], "--param", "-p", help="template parameter key=value (repeatable)"),
    node: list[str] = typer.Option([], "--node", help="only these nodes (repeatable)"),
    gateway: str = GATEWAY, directory: Path = DIRECTORY, timeout: float = TIMEOUT, as_json: bool = JSON,
) -> None:
    """Score every node for a job, with the reason a node is rejected."""
    request = orchestrator_pb2.ExplainPlacementRequest(spec=_spec(kind, config, param, node))
    reply = _gateway_call(gateway, directory, timeout, lambda stub, t: stub.ExplainPlacement(request, timeout=t))
    if as_json:
        _print_json(list(reply.scores))
        return
    table = Table("rank", "node", "usable", "effective power", "GPU", "CPU", "load", "locality", "why not",
                  title=f"placement of a {kind} job")
    for score in sorted(reply.scores, key=lambda s: (not s.usable, s.rank)):
        reason = _label(nodes_pb2.RejectionReason, "REJECTION_REASON_", score.rejection_reason)
        table.add_row(str(score.rank) if score.usable else "-", score.node_id, "yes" if score.usable else "no",
                      f"{score.effective_power:.2f}", f"{score.gpu_power:.2f}", f"{score.cpu_power:.2f}",
                      f"{score.load_score:.2f}", f"{score.locality_bonus:.2f}",
                      "" if score.usable else f"{reason}: {score.rejection_detail}"[:80])
    console.print(table)


@explain_app.command("allocation")
def explain_allocation(
    node: str = typer.Option("", help="also the target job count of this node"),
    gateway: str = GATEWAY, directory: Path = DIRECTORY, timeout: float = TIMEOUT, as_json: bool = JSON,
) -> None:
    """Self-play priority of every config, term by term."""
    reply = _gateway_call(gateway, directory, timeout, lambda stub, t: stub.ExplainAllocation(
        orchestrator_pb2.ExplainAllocationRequest(node_id=node), timeout=t))
    if as_json:
        _print_json(list(reply.terms))
        return
    table = Table("config", "games", "base", "elo", "curriculum", "starved", "bootstrap", "gap x", "penalty x",
                  "diversity", "priority", "share", "note", title="self-play allocation")
    for t in sorted(reply.terms, key=lambda t: -t.probability):
        note = t.excluded_reason or ("plateau" if t.plateau else "") or ("starvation floor" if t.starvation_floor else "")
        table.add_row(t.config_key, str(t.games_total), f"{t.base:.2f}", str(t.elo_boost), str(t.curriculum_boost),
                      str(t.data_starvation_boost), str(t.bootstrap_boost), f"{t.elo_gap_factor:.2f}",
                      f"{t.promotion_penalty_factor:.2f}", str(t.diversity_bonus), f"{t.effective_priority:.2f}",
                      f"{t.probability:.0%}", note)
    console.print(table)


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
    autoscale: int = typer.Option(0, min=0, max=16, help="let the leader add up to this many agents when work piles up"),
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
    try:
        find_etcd()
    except EtcdNotFound:
        with console.status("etcd is not installed: installing Debian's etcd-server"):
            try:
                install_etcd()
            except EtcdNotFound as exc:
                _fail(str(exc))
    cluster = LocalCluster(directory, agents=agents, gateways=gateways, autoscale_extra=autoscale)
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
        if cluster.dashboard_urls:
            console.print(f"dashboard: {cluster.dashboard_urls[0]}   (every gateway replica serves one)")
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
