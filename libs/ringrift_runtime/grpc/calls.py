"""Outbound calls that speak the error taxonomy: a failed call raises the RingriftError
it stands for (StaleEpoch, NotFound, DependencyUnavailable, ...), never a raw RpcError."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

import grpc

from ringrift_runtime.grpc.status import domain_error

T = TypeVar("T")


async def call(awaitable: Awaitable[T]) -> T:
    try:
        return await awaitable
    except grpc.aio.AioRpcError as exc:
        raise domain_error(exc) from None


async def stream(call_object: AsyncIterator[T]) -> AsyncIterator[T]:
    """A server stream whose failure raises the RingriftError it stands for."""
    try:
        async for item in call_object:
            yield item
    except grpc.aio.AioRpcError as exc:
        raise domain_error(exc) from None


async def last(call_object: AsyncIterator[T]) -> T | None:
    """Read a progress stream to its end; its last message (None when it sent none)."""
    final = None
    async for item in stream(call_object):
        final = item
    return final
