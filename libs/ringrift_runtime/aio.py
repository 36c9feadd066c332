"""Small asyncio helpers shared by long-lived background tasks."""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable

log = logging.getLogger("ringrift.aio")


async def cancel_and_wait(task: asyncio.Task | None) -> None:
    """Cancel ``task`` and wait until it has finished unwinding."""
    if task is None:
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass


async def quietly(awaitable: Awaitable[object], what: str = "") -> None:
    """Best effort on the way out (closing a broken client, a last notification)."""
    try:
        await awaitable
    except Exception as exc:  # noqa: BLE001 - the caller is already leaving
        if what:
            log.debug("%s failed: %r", what, exc)
