"""The event log, once or followed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer

from ringrift.common.v1 import common_pb2
from ringrift.orchestrator.v1 import orchestrator_pb2
from ringrift_cli.console import console
from ringrift_cli.gateway import DIRECTORY, GATEWAY, JSON, TIMEOUT, gateway_call
from ringrift_cli.render import enum_values, when
from ringrift_contracts.tables import EVENT_TYPES


def event_types(names: list[str]) -> list[int]:
    return enum_values(EVENT_TYPES, names, "event type")


def events(
    follow: bool = typer.Option(False, "--follow", "-f", help="keep printing new events"),
    from_sequence: int = typer.Option(0, "--from", help="events after this sequence number"),
    event_type: list[str] = typer.Option([], "--type", help="only this type (repeatable), e.g. model_promoted"),
    limit: int = typer.Option(50, min=1, help="without --follow: the last this many events"),
    gateway: str = GATEWAY,
    directory: Path = DIRECTORY,
    timeout: float = TIMEOUT,
    as_json: bool = JSON,
) -> None:
    """The cluster's event log; with --follow, live (resumable by --from)."""
    request = orchestrator_pb2.WatchEventsRequest(
        from_sequence=from_sequence, filter=common_pb2.EventFilter(types=event_types(event_type))
    )

    def show(event) -> None:
        if as_json:
            from google.protobuf.json_format import MessageToJson

            print(MessageToJson(event, indent=None), flush=True)
            return
        kind = EVENT_TYPES.name(event.type)
        attributes = " ".join(f"{k}={v}" for k, v in sorted(event.attributes.items()))
        console.print(
            f"{event.sequence:>7} {when(event.time)} [bold]{kind}[/bold] {event.subject} {attributes}",
            highlight=False,
            soft_wrap=True,
        )

    async def watch(client, t):
        last: list = []
        events = client.watch_events(request, timeout=None if follow else t)
        if follow:
            async for item in events:
                show(item.event)
            return
        # Without --follow: read what is there now (the stream goes live after the backlog).
        try:
            while True:
                item = await asyncio.wait_for(anext(events), 1.0)
                last.append(item.event)
                last = last[-limit:]
        except (TimeoutError, StopAsyncIteration):
            pass
        finally:
            await events.aclose()
        for event in last:
            show(event)

    gateway_call(gateway, directory, timeout, watch)


COMMANDS = [events]
