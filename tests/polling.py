"""Waiting in tests for something another process or task does: poll until it holds."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> bool:
    """Whether ``predicate()`` became true within ``timeout`` seconds (blocking)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


async def until(
    what: str,
    predicate: Callable[[], Any],
    timeout: float = 30.0,
    interval: float = 0.1,
    describe: Callable[[], Awaitable[Any]] | None = None,
) -> None:
    """Wait until ``predicate()`` (a plain or an async function) is true; an
    AssertionError naming ``what`` (and what ``describe()`` finds) after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        held = predicate()
        if inspect.isawaitable(held):
            held = await held
        if held:
            return
        if time.monotonic() > deadline:
            seen = await describe() if describe else ""
            raise AssertionError(f"not within {timeout:g}s: {what} {seen}".rstrip())
        await asyncio.sleep(interval)
