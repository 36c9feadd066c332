"""Outbound calls that speak the error taxonomy: a failed call raises the RingriftError
it stands for (StaleEpoch, NotFound, DependencyUnavailable, ...), never a raw RpcError."""

from __future__ import annotations

from typing import Awaitable, TypeVar

import grpc

from ringrift_runtime.grpc.status import domain_error

T = TypeVar("T")


async def call(awaitable: Awaitable[T]) -> T:
    try:
        return await awaitable
    except grpc.aio.AioRpcError as exc:
        raise domain_error(exc) from None
