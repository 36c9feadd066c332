"""Executing a plan: every transfer is a pull by its target from its source, with at
most ``max_in`` transfers into and ``max_out`` out of any node at once, and the node's
bandwidth budget shared by its incoming transfers. A failed transfer fails alone; the
others go on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from ringrift_sync.domain.planner import Plan, Transfer


class Puller(Protocol):
    def pull(self, transfer: Transfer, max_bytes_per_second: int) -> AsyncIterator[int]:
        """Bytes present at the target so far, until the file is verified in place."""


@dataclass
class Progress:
    plan_id: str
    transfers_total: int
    bytes_total: int
    transfers_done: int = 0
    transfers_failed: int = 0
    bytes_done: int = 0
    finished: bool = False
    errors: dict[str, str] = field(default_factory=dict)
    per_transfer: dict[str, int] = field(default_factory=dict)


async def execute(
    plan: Plan,
    puller: Puller,
    max_in: int,
    max_out: int,
    bandwidth_per_node: int,
    on_change: Callable[[Transfer, str, int, str], Awaitable[None]],
    report: Callable[[Progress], None],
) -> Progress:
    """Run every transfer of ``plan``; ``on_change(transfer, state, bytes, error)`` sees
    running/completed/failed; ``report`` sees progress as bytes flow."""
    progress = Progress(plan.plan_id, len(plan.transfers), plan.total_bytes)
    pending = list(plan.transfers)
    running: dict[asyncio.Task[None], Transfer] = {}
    ins: dict[str, int] = {}
    outs: dict[str, int] = {}

    async def run(transfer: Transfer) -> None:
        await on_change(transfer, "running", 0, "")
        budget = bandwidth_per_node // max_in if bandwidth_per_node else 0
        try:
            async for done in puller.pull(transfer, budget):
                progress.per_transfer[transfer.transfer_id] = done
                progress.bytes_done = sum(progress.per_transfer.values())
                report(progress)
        except Exception as exc:
            progress.transfers_failed += 1
            progress.errors[transfer.transfer_id] = str(exc) or type(exc).__name__
            await on_change(
                transfer,
                "failed",
                progress.per_transfer.get(transfer.transfer_id, 0),
                progress.errors[transfer.transfer_id],
            )
        else:
            progress.transfers_done += 1
            progress.per_transfer[transfer.transfer_id] = transfer.file.size
            progress.bytes_done = sum(progress.per_transfer.values())
            await on_change(transfer, "completed", transfer.file.size, "")
        report(progress)

    try:
        while pending or running:
            for transfer in list(pending):
                if ins.get(transfer.target, 0) < max_in and outs.get(transfer.source, 0) < max_out:
                    pending.remove(transfer)
                    ins[transfer.target] = ins.get(transfer.target, 0) + 1
                    outs[transfer.source] = outs.get(transfer.source, 0) + 1
                    running[asyncio.create_task(run(transfer))] = transfer
            done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                transfer = running.pop(task)
                ins[transfer.target] -= 1
                outs[transfer.source] -= 1
                task.result()
    finally:
        for task in running:
            task.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)
    progress.finished = True
    report(progress)
    return progress
