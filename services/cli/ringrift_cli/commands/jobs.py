"""Job commands: list, show, submit, cancel, logs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.table import Table

from ringrift.common.v1 import common_pb2
from ringrift.orchestrator.v1 import orchestrator_pb2
from ringrift_cli.console import console, err, fail
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
    reply = gateway_call(gateway, directory, timeout, lambda client, t: client.list_jobs(request, timeout=t))
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


BATCH = 1000  # jobs per SubmitJobs call (the services' limit)
MAX_JOBS = 100_000  # per command
FILE_FIELDS = ("kind", "config_key", "params", "nodes", "idempotency_key")


def _file_line(number: int, line: str) -> orchestrator_pb2.SubmitJobRequest:
    """One job of a JSON-lines file (FILE_FIELDS; only "kind" is required)."""
    try:
        item = json.loads(line)
    except ValueError as exc:
        fail(f"line {number}: not JSON ({exc}); write one object per line", 2)
    if not isinstance(item, dict) or not isinstance(item.get("kind"), str):
        fail(f'line {number}: needs an object with a "kind", e.g. {{"kind": "echo", "params": {{"message": "hi"}}}}', 2)
    unknown = sorted(set(item) - set(FILE_FIELDS))
    if unknown:
        fail(f"line {number}: unknown field {unknown[0][:40]!r} (fields: {', '.join(FILE_FIELDS)})", 2)
    params, nodes = item.get("params") or {}, item.get("nodes") or []
    if not isinstance(params, dict) or not isinstance(nodes, list):
        fail(f'line {number}: "params" must be an object and "nodes" a list', 2)
    spec = common_pb2.JobSpec(
        kind=item["kind"],
        config_key=str(item.get("config_key", "")),
        params={str(k): str(v) for k, v in params.items()},
        requirements=common_pb2.ResourceRequirements(required_node_ids=[str(n) for n in nodes]),
    )
    return orchestrator_pb2.SubmitJobRequest(spec=spec, idempotency_key=str(item.get("idempotency_key", "")))


def _read_file(path: Path) -> list[orchestrator_pb2.SubmitJobRequest]:
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read {path}: {exc}", 2)
    requests = [_file_line(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not 1 <= len(requests) <= MAX_JOBS:
        fail(f"{path} holds {len(requests)} jobs; give between 1 and {MAX_JOBS:,}", 2)
    return requests


def _submit_many(
    requests: list[orchestrator_pb2.SubmitJobRequest], gateway: str, directory: Path, timeout: float, as_json: bool
) -> None:
    """In batches of 1,000, each all or nothing; the batches before a refused one stay."""
    done = orchestrator_pb2.SubmitJobsResponse()
    for start in range(0, len(requests), BATCH):
        batch = orchestrator_pb2.SubmitJobsRequest(jobs=requests[start : start + BATCH])
        if start:  # on stderr: should a later batch be refused, what went before is known
            err.print(f"submitted {start} of {len(requests)} jobs", highlight=False)
        reply = gateway_call(gateway, directory, timeout, lambda client, t, b=batch: client.submit_jobs(b, timeout=t))
        done.jobs.extend(reply.jobs)
        done.created.extend(reply.created)
    if as_json:
        print_json(done)
        return
    fresh = sum(done.created)
    existing = f" ({len(done.jobs) - fresh} already submitted)" if fresh < len(done.jobs) else ""
    console.print(f"submitted {fresh} jobs{existing}: {done.jobs[0].job_id} … {done.jobs[-1].job_id}", highlight=False)


def submit(
    kind: str = typer.Argument("", help="job kind from the agents' catalog, e.g. selfplay, echo (not with --file)"),
    config: str = typer.Option("", help="config key, e.g. square8_2p"),
    param: list[str] = typer.Option([], "--param", "-p", help="template parameter key=value (repeatable)"),
    node: list[str] = typer.Option([], "--node", help="run only on this node (repeatable)"),
    key: str = typer.Option("", "--idempotency-key", help="the same key returns the same job (--count: <key>-<n>)"),
    count: int = typer.Option(1, "--count", help="submit this many such jobs in one call"),
    file: Path | None = typer.Option(None, "--file", "-f", help="JSON lines, one job each (see README); - for stdin"),
    gateway: str = GATEWAY,
    directory: Path = DIRECTORY,
    timeout: float = TIMEOUT,
    as_json: bool = JSON,
) -> None:
    """Submit jobs; the leader dispatches each to the best node at once."""
    if bool(kind) == bool(file):
        fail("give a job kind (ringrift submit echo -p message=hi) or --file jobs.jsonl, not both", 2)
    if not 1 <= count <= MAX_JOBS:
        fail(f"--count must be between 1 and {MAX_JOBS:,}", 2)
    if file is not None:
        _submit_many(_read_file(file), gateway, directory, timeout, as_json)
        return
    if count > 1:
        spec = job_spec(kind, config, param, node)
        keys = [f"{key}-{n}" if key else "" for n in range(1, count + 1)]
        _submit_many(
            [orchestrator_pb2.SubmitJobRequest(spec=spec, idempotency_key=k) for k in keys],
            gateway,
            directory,
            timeout,
            as_json,
        )
        return
    request = orchestrator_pb2.SubmitJobRequest(spec=job_spec(kind, config, param, node), idempotency_key=key)
    reply = gateway_call(gateway, directory, timeout, lambda client, t: client.submit_job(request, timeout=t))
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
        lambda client, t: client.cancel_job(orchestrator_pb2.CancelJobRequest(job_id=job_id, reason=reason), timeout=t),
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
        lambda client, t: client.get_job(orchestrator_pb2.GetJobRequest(job_id=job_id), timeout=t),
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
    follow: bool = typer.Option(
        False, "--follow", "-f", help="keep printing until the job ends (a job not yet started: from its start)"
    ),
    attempt: int = typer.Option(0, help="attempt number (default: the latest)"),
    gateway: str = GATEWAY,
    directory: Path = DIRECTORY,
    timeout: float = TIMEOUT,
) -> None:
    """A job's output, from the node that ran it."""
    request = orchestrator_pb2.StreamJobLogsRequest(job_id=job_id, attempt=attempt, follow=follow)

    async def stream(client, t):
        # Following a job not started yet waits in JobService (on its events) for its start.
        async for chunk in client.stream_job_logs(request, timeout=None if follow else t):
            target = sys.stderr.buffer if chunk.stderr else sys.stdout.buffer
            target.write(chunk.data)
            target.flush()

    gateway_call(gateway, directory, timeout, stream)


COMMANDS = [jobs, job, submit, cancel, logs]
