"""Who is calling, from the connection alone: the SAN URI of the caller's certificate
(mutual TLS), or on the gateway's token port a bearer token. The identity of the call
being served is in a context variable for the servicer (``caller()``); nothing a caller
writes in a request field is an identity."""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass

import grpc

from ringrift_runtime import errors
from ringrift_runtime.security.identity import Identity
from ringrift_runtime.security.tokens import TokenStore

_CALLER: ContextVar[Identity | None] = ContextVar("ringrift_caller", default=None)
BEARER = "bearer "


def caller() -> Identity | None:
    """The identity of the call being served (None on an insecure cluster)."""
    return _CALLER.get()


def set_caller(identity: Identity | None) -> object:
    return _CALLER.set(identity)


def reset_caller(token: object) -> None:
    _CALLER.reset(token)  # type: ignore[arg-type]


@dataclass
class Authorization:
    """The check every served call goes through (the runtime's server interceptor)."""

    cluster: str
    allowed: Callable[[str, Identity | None], bool]  # the authorization table's verdict
    needs_identity: Callable[[str], bool]
    tokens: TokenStore | None = None  # bearer tokens (the gateway's token port)

    def identify(self, context: grpc.aio.ServicerContext) -> Identity | None:
        auth = context.auth_context() or {}
        for uri in auth.get("peer_spiffe_id", []) or auth.get("x509_subject_alternative_name", []):
            try:
                identity = Identity.parse(uri.decode() if isinstance(uri, bytes) else str(uri))
            except ValueError:
                continue
            if identity.cluster == self.cluster:
                return identity
        if self.tokens is not None:
            for key, value in context.invocation_metadata() or ():
                if key == "authorization" and isinstance(value, str) and value.lower().startswith(BEARER):
                    identity = self.tokens.verify(value[len(BEARER) :].strip())
                    if identity is not None and identity.cluster == self.cluster:
                        return identity
        return None

    def check(self, method: str, identity: Identity | None) -> None:
        """Raise Unauthenticated or PermissionDenied (naming the identity and the method)."""
        if identity is None and self.needs_identity(method):
            raise errors.Unauthenticated(
                f"{method} needs a client certificate of cluster {self.cluster} (or a bearer token on the token port)"
            )
        if not self.allowed(method, identity):
            raise errors.PermissionDenied(f"{identity} may not call {method}", identity=str(identity), method=method)
