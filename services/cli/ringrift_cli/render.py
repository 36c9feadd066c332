"""How the command line shows what the gateway answered: tables, JSON for scripts, times."""

from __future__ import annotations

import json
import time

from rich.table import Table

from ringrift.orchestrator.v1 import orchestrator_pb2
from ringrift_cli.console import console, fail
from ringrift_contracts.nodes import cpu_cores, effective_gpu, ram_mb
from ringrift_contracts.tables import JOB_STATES, LOOP_HEALTH, EnumTable


def enum_values(table: EnumTable, names: list[str], what: str) -> list[int]:
    """``pending`` -> JOB_STATE_PENDING and so on (how every enum value is shown and typed);
    an unknown name ends the command with the names it accepts."""
    values = []
    for name in names:
        value = table.value(name)
        if value is None:
            fail(f"unknown {what} {name[:40]!r}: use one of {table.choices()}", 2)
        values.append(value)
    return values


def print_json(message_or_list) -> None:
    from google.protobuf.json_format import MessageToDict

    if isinstance(message_or_list, list):
        data = [MessageToDict(m) for m in message_or_list]
    else:
        data = MessageToDict(message_or_list)
    console.print_json(json.dumps(data))


def when(stamp) -> str:
    if not stamp.seconds:
        return "-"
    return time.strftime("%H:%M:%S", time.localtime(stamp.seconds))


def ago(stamp) -> str:
    if not stamp.seconds:
        return "-"
    seconds = max(0, time.time() - stamp.seconds)
    return f"{seconds:.0f} s ago" if seconds < 120 else f"{seconds / 60:.0f} min ago"


def state_name(state: int) -> str:
    return JOB_STATES.name(state)


def nodes_table(nodes) -> Table:
    table = Table("node", "address", "GPU", "cores", "RAM GB", "CPU %", "mem %", "disk %", "jobs", title="nodes")
    for node in nodes:
        gpu = effective_gpu(node)
        gpu_text = f"{gpu.count}x {gpu.model}" if gpu.count else "-"
        cores = cpu_cores(node)
        ram = ram_mb(node) / 1024
        jobs = ", ".join(f"{k} {v}" for k, v in sorted(node.metrics.running_jobs_by_kind.items()) if v) or "-"
        name = node.node_id + (" (draining)" if node.draining else "") + (" (quarantined)" if node.quarantined else "")
        table.add_row(
            name,
            node.address,
            gpu_text,
            str(cores),
            f"{ram:.0f}",
            f"{node.metrics.cpu_percent:.0f}",
            f"{node.metrics.memory_percent:.0f}",
            f"{node.metrics.disk_percent:.0f}",
            jobs,
        )
    return table


LOOP_HEALTH_STYLE = {"healthy": "green", "degraded": "red", "paused": "yellow", "stopped": "dim", "starting": "cyan"}


def loops_table(loops) -> Table:
    table = Table(
        "loop", "health", "every", "runs", "errors", "last run", "last error", title="loops (as the leader sees them)"
    )
    for loop in loops:
        health = LOOP_HEALTH.name(loop.health)
        table.add_row(
            loop.name,
            f"[{LOOP_HEALTH_STYLE.get(health, '')}]{health}[/]",
            f"{loop.interval_seconds:g} s",
            str(loop.runs),
            str(loop.consecutive_errors),
            ago(loop.last_run_at),
            loop.last_error[:60],
        )
    return table


INSECURE = "plaintext ports that trust every caller (security.insecure); for a trusted network only"


def render_status(status: orchestrator_pb2.GetClusterStatusResponse) -> None:
    leader = status.leader_id or "(none elected yet)"
    if status.insecure:
        console.print(f"[bold red]SECURITY IS OFF[/bold red] on {status.replica_id}: {INSECURE}")
    console.print(f"[bold]leader[/bold] {leader}   [bold]epoch[/bold] {status.epoch}   answered by {status.replica_id}")
    services = Table("service", "instance", "address", title="control plane")
    for endpoint in status.services:
        services.add_row(endpoint.service, endpoint.instance_id, endpoint.address)
    console.print(services)
    console.print(nodes_table(status.nodes))
    if status.jobs:
        by_state: dict[str, dict[str, int]] = {}
        for count in status.jobs:
            by_state.setdefault(count.kind, {})[state_name(count.state)] = count.count
        states = sorted({s for per in by_state.values() for s in per})
        jobs = Table("kind", *states, title="jobs")
        for kind, per in sorted(by_state.items()):
            jobs.add_row(kind, *(str(per.get(s, 0)) for s in states))
        console.print(jobs)
    if status.loops:
        console.print(loops_table(status.loops))
    if status.games_by_config or status.best_model_by_config:
        configs = Table("config", "games", "best model", title="training")
        for config in sorted(set(status.games_by_config) | set(status.best_model_by_config)):
            configs.add_row(
                config, str(status.games_by_config.get(config, 0)), status.best_model_by_config.get(config, "-")
            )
        console.print(configs)
