"""Compare-and-swap writes of versioned values (StateService's PersistState): read,
change, write at the version read, and read again when another writer got there first."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from ringrift_runtime.errors import Conflict

V = TypeVar("V")
R = TypeVar("R")

DEFAULT_ATTEMPTS = 5


async def compare_and_swap(
    load: Callable[[], Awaitable[tuple[V, int]]],
    store: Callable[[V, int], Awaitable[R]],
    change: Callable[[V], V],
    what: str,
    attempts: int = DEFAULT_ATTEMPTS,
) -> R:
    """``load()`` gives (value, version); ``store(new value, version read)`` raises Conflict
    when the stored version moved on. Retried up to ``attempts`` times, then Conflict."""
    for _ in range(attempts):
        value, version = await load()
        try:
            return await store(change(value), version)
        except Conflict:
            continue  # another writer changed it meanwhile: read it again
    raise Conflict(f"{what} kept changing under concurrent writers; try again")
