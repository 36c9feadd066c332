"""Reading a whole list: every page of a token-paged call, every item after a sequence.

A list is read to its end, never to its first short page: a server may cap a page below
what was asked (StateService caps event pages), so "fewer than I asked for" does not
mean "the end"."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TypeVar

from ringrift_runtime.errors import OutOfRange

T = TypeVar("T")

# What a token-paged call returns for one page: its items and the next page's token ("" at the end).
Page = tuple[Sequence[T], str]


async def pages(fetch: Callable[[str], Awaitable[Page[T]]]) -> AsyncIterator[Sequence[T]]:
    """Each page of ``fetch(token)``, from the first ("" token) to the one with no next token."""
    token = ""
    seen: set[str] = set()
    while True:
        items, token = await fetch(token)
        yield items
        if not token:
            return
        if token in seen:  # a server that hands out a token twice would loop forever
            raise RuntimeError(f"page token {token[:40]!r} came back twice")
        seen.add(token)


async def read_all(fetch: Callable[[str], Awaitable[Page[T]]]) -> list[T]:
    """Every item of every page of ``fetch(token)``."""
    found: list[T] = []
    async for items in pages(fetch):
        found.extend(items)
    return found


async def after_sequence(
    fetch: Callable[[int], Awaitable[Sequence[T]]], after: int, sequence: Callable[[T], int]
) -> AsyncIterator[T]:
    """Every item ``fetch(after)`` returns, then the items after the last one, and so on
    until a page comes back empty. ``sequence(item)`` is an item's position. Items deleted
    past their retention (OUT_OF_RANGE) are skipped: reading resumes at the oldest kept."""
    while True:
        try:
            batch = await fetch(after)
        except OutOfRange as exc:
            if exc.oldest_available - 1 <= after:
                raise
            after = exc.oldest_available - 1
            continue
        if not batch:
            return
        for item in batch:
            yield item
        last = sequence(batch[-1])
        if last <= after:
            raise RuntimeError(f"a page after sequence {after} ended at {last}: the sequence did not advance")
        after = last


async def read_after(
    fetch: Callable[[int], Awaitable[Sequence[T]]], after: int, sequence: Callable[[T], int]
) -> list[T]:
    return [item async for item in after_sequence(fetch, after, sequence)]
