"""The audit trail: every call of a user that changes something on the cluster (a facade
method that is not a read, by its proto's idempotency level), allowed or refused, becomes
an AUDIT event whose subject is the caller's identity from its certificate or token.
Written before the answer goes out; reads are not recorded."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from google.protobuf import text_format

from ringrift_runtime.grpc.contracts import SERVICE_BY_PROCESS, idempotency_level
from ringrift_runtime.security.identity import Identity, Kind

FACADE = SERVICE_BY_PROCESS["gateway"]
REQUEST_CHARS = 300  # the start of the request, enough to say what was asked

Publish = Callable[..., Awaitable[Any]]


def is_mutation(method: str) -> bool:
    """``method`` is "/package.Service/Method"; a facade method that is not a read."""
    name = method.lstrip("/")
    return name.startswith(f"{FACADE}/") and idempotency_level(name) != "NO_SIDE_EFFECTS"


class AuditTrail:
    def __init__(self, publish: Publish) -> None:
        self._publish = publish  # StateClient.publish

    async def __call__(self, method: str, identity: Identity | None, code: str, request: Any) -> None:
        if not is_mutation(method):
            return
        if identity is not None and identity.kind is not Kind.USER:
            return  # replicas and services act for the cluster, not for a person
        try:
            shown = text_format.MessageToString(request, as_one_line=True)[:REQUEST_CHARS]
        except Exception:
            shown = type(request).__name__
        await self._publish(
            "AUDIT",
            str(identity) if identity is not None else "anonymous",
            0,
            attributes={"method": method.lstrip("/"), "code": code, "request": shown},
        )
