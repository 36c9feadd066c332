"""The leading gateway's background loops: list, pause, resume."""

from __future__ import annotations

from pathlib import Path

import typer

from ringrift.orchestrator.v1 import orchestrator_pb2
from ringrift_cli.console import console
from ringrift_cli.gateway import DIRECTORY, GATEWAY, JSON, TIMEOUT, gateway_call
from ringrift_cli.render import loops_table, print_json

loops_app = typer.Typer(help="Background loops of the leading gateway: list, pause, resume.")


@loops_app.callback(invoke_without_command=True)
def loops_list(
    ctx: typer.Context,
    gateway: str = GATEWAY,
    directory: Path = DIRECTORY,
    timeout: float = TIMEOUT,
    as_json: bool = JSON,
) -> None:
    """List the loops with their health (the default)."""
    if ctx.invoked_subcommand:
        return
    reply = gateway_call(
        gateway, directory, timeout, lambda client, t: client.list_loops(orchestrator_pb2.ListLoopsRequest(), timeout=t)
    )
    print_json(list(reply.loops)) if as_json else console.print(loops_table(reply.loops))


def set_loop(name: str, paused: bool, gateway: str | None, directory: Path, timeout: float) -> None:
    def call(client, t):
        if paused:
            return client.pause_loop(orchestrator_pb2.PauseLoopRequest(name=name), timeout=t)
        return client.resume_loop(orchestrator_pb2.ResumeLoopRequest(name=name), timeout=t)

    reply = gateway_call(gateway, directory, timeout, call)
    console.print(f"{reply.loop.name}: {'paused' if paused else 'resumed'}")


@loops_app.command("pause")
def loops_pause(
    name: str = typer.Argument(..., help="loop name, e.g. QueuePopulator"),
    gateway: str = GATEWAY,
    directory: Path = DIRECTORY,
    timeout: float = TIMEOUT,
) -> None:
    """Pause a loop (it stays paused across a change of leader)."""
    set_loop(name, True, gateway, directory, timeout)


@loops_app.command("resume")
def loops_resume(
    name: str = typer.Argument(..., help="loop name, e.g. QueuePopulator"),
    gateway: str = GATEWAY,
    directory: Path = DIRECTORY,
    timeout: float = TIMEOUT,
) -> None:
    """Resume a paused loop."""
    set_loop(name, False, gateway, directory, timeout)
