"""Job commands: list, show, submit, cancel, logs."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.table import Table

from ringrift.common.v1 import common_pb2
from ringrift.orchestrator.v1 import orchestrator_pb2
from ringrift_cli.console import console, fail
from ringrift_cli.gateway import DIRECTORY, GATEWAY, JSON, TIMEOUT, gateway_call
from ringrift_cli.render import ago, enum_values, print_json, state_name, when
from ringrift_contracts.tables import JOB_STATES


def job_states(names: list[str]) -> list[int]:
    return enum_values(JOB_STATES, names, "job state")


def jobs(
    state: list[str] = typer.Option([], "--state", help="only jobs in this state (repeatable): pending, running, ..."),
    kind: str = typer.Option("", help="only this job kind"),
    config: str = typer.Option("", help="only this config key, e.g. square8_2p"),
    node: str = typer.Option("", help="only jobs on this node"),
    limit: int = typer.Option(50, min=1, max=1000, help="at most this many jobs"),
    gateway: str = GATEWAY,
    directory: Path = DIRECTORY,
    timeout: float = TIMEOUT,
    as_json: bool = JSON,
) -> None:
    """Jobs, newest first, by state, kind, config or node."""
    request = orchestrator_pb2.ListJobsRequest(
        states=job_states(state),
        kind=kind,
        config_key=config,
        node_id=node,
        page=common_pb2.PageRequest(page_size=limit),
    )
    reply = gateway_call(gateway, directory, timeout, lambda stub, t: stub.ListJobs(request, timeout=t))
    if as_json:
        print_json(list(reply.jobs))
        return
    table = Table("job", "kind", "config", "state", "node", "attempt", "updated", "error", title="jobs")
    for job in reply.jobs:
        table.add_row(
            job.job_id,
            job.spec.kind,
            job.spec.config_key or "-",
            state_name(job.state),
            job.node_id or "-",
            str(job.attempt),
            ago(job.updated_at),
            job.error[:50],
        )
    console.print(table)
    if reply.next_page_token:
        console.print(f"(more jobs: raise --limit, now {limit})")


def parse_params(pairs: list[str]) -> dict[str, str]:
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            fail(f"--param {pair!r} is not key=value (for example --param games=100)", 2)
        params[key] = value
    return params


def job_spec(kind: str, config: str, param: list[str], node: list[str]) -> common_pb2.JobSpec:
    return common_pb2.JobSpec(
        kind=kind,
        config_key=config,
        params=parse_params(param),
        requirements=common_pb2.ResourceRequirements(required_node_ids=node),
    )


def submit(
    kind: str = typer.Argument(..., help="job kind from the agents' catalog, e.g. selfplay, export, train, gauntlet"),
    config: str = typer.Option("", help="config key, e.g. square8_2p"),
    param: list[str] = typer.Option([], "--param", "-p", help="template parameter key=value (repeatable)"),
    node: list[str] = typer.Option([], "--node", help="run only on this node (repeatable)"),
    key: str = typer.Option("", "--idempotency-key", help="submitting again with the same key returns the same job"),
    gateway: str = GATEWAY,
    directory: Path = DIRECTORY,
    timeout: float = TIMEOUT,
    as_json: bool = JSON,
) -> None:
    """Submit a job; the leader dispatches it to the best node."""
    request = orchestrator_pb2.SubmitJobRequest(spec=job_spec(kind, config, param, node), idempotency_key=key)
    reply = gateway_call(gateway, directory, timeout, lambda stub, t: stub.SubmitJob(request, timeout=t))
    if as_json:
        print_json(reply)
    else:
        console.print(
            f"{'submitted' if reply.created else 'already submitted'} {reply.job.job_id} "
            f"({state_name(reply.job.state)}); follow it with `ringrift logs {reply.job.job_id} --follow`"
        )


def cancel(
    job_id: str = typer.Argument(..., help="the job to cancel"),
    reason: str = typer.Option("cancelled from the CLI", help="why, for the job's record"),
    gateway: str = GATEWAY,
    directory: Path = DIRECTORY,
    timeout: float = TIMEOUT,
    as_json: bool = JSON,
) -> None:
    """Cancel a job (its process is stopped on its node)."""
    reply = gateway_call(
        gateway,
        directory,
        timeout,
        lambda stub, t: stub.CancelJob(orchestrator_pb2.CancelJobRequest(job_id=job_id, reason=reason), timeout=t),
    )
    print_json(reply) if as_json else console.print(f"{reply.job.job_id}: {state_name(reply.job.state)}")


def job(
    job_id: str = typer.Argument(..., help="the job"),
    gateway: str = GATEWAY,
    directory: Path = DIRECTORY,
    timeout: float = TIMEOUT,
    as_json: bool = JSON,
) -> None:
    """One job with its attempts and result."""
    reply = gateway_call(
        gateway,
        directory,
        timeout,
        lambda stub, t: stub.GetJob(orchestrator_pb2.GetJobRequest(job_id=job_id), timeout=t),
    )
    if as_json:
        print_json(reply)
        return
    j = reply.job
    console.print(
        f"[bold]{j.job_id}[/bold] {j.spec.kind} {j.spec.config_key} - {state_name(j.state)}"
        + (f" on {j.node_id}" if j.node_id else "")
        + (f": {j.error}" if j.error else "")
    )
    console.print("params: " + (", ".join(f"{k}={v}" for k, v in sorted(j.spec.params.items())) or "-"))
    table = Table("attempt", "node", "state", "started", "finished", "exit", "error", title="attempts")
    for a in j.attempts:
        table.add_row(
            str(a.attempt),
            a.node_id or "-",
            state_name(a.state),
            when(a.started_at),
            when(a.finished_at),
            str(a.exit_code),
            a.error[:60],
        )
    console.print(table)
    if j.result_json:
        console.print("result: " + j.result_json[:2000], highlight=False)


def logs(
    job_id: str = typer.Argument(..., help="the job"),
    follow: bool = typer.Option(False, "--follow", "-f", help="keep printing until the job ends"),
    attempt: int = typer.Option(0, help="attempt number (default: the latest)"),
    gateway: str = GATEWAY,
    directory: Path = DIRECTORY,
    timeout: float = TIMEOUT,
) -> None:
    """A job's output, from the node that ran it."""
    request = orchestrator_pb2.StreamJobLogsRequest(job_id=job_id, attempt=attempt, follow=follow)

    async def stream(stub, t):
        async for chunk in stub.StreamJobLogs(request, timeout=None if follow else t):
            target = sys.stderr.buffer if chunk.stderr else sys.stdout.buffer
            target.write(chunk.data)
            target.flush()

    gateway_call(gateway, directory, timeout, stream)


COMMANDS = [jobs, job, submit, cancel, logs]
