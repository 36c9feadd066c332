"""Calling a secured service the way the cluster does: each method as an identity the
authorization table allows for it (the state service's writes as the service that owns
them, the leader's calls as a gateway), and holding an election key in etcd."""

from __future__ import annotations

from typing import Any

from ringrift_client import AsyncClient, Context
from ringrift_contracts import access
from ringrift_runtime.security.identity import Identity, Kind, Role, agent, any_gateway, gateway, service, user
from ringrift_runtime.security.tls import ReloadingChannel
from ringrift_runtime.testing.election import drop_leader_key, hold_leader_key
from ringrift_runtime.testing.pki import TestPki


def identity_of(principal: str, cluster: str) -> Identity:
    """A concrete identity that counts as ``principal`` of the authorization table."""
    if principal.startswith("service:"):
        return service(principal.removeprefix("service:"), cluster)
    if principal == access.GATEWAY:
        return gateway("gw-test", cluster)
    if principal == access.AGENT:
        return agent("node-test", cluster)
    if principal.startswith("user:"):
        role = Role(principal.removeprefix("user:"))
        return user(f"test-{role.value}", role, cluster)
    return user("test-admin", Role.ADMIN, cluster)  # any, open


def allowed_identity(full_method: str, cluster: str) -> Identity:
    """An identity allowed to call ``package.Service/Method``: the first in a stable order,
    an agent last (the table lets agents make some calls only for a narrow purpose, which
    the service checks: PublishEvent for RECORD_SKIPPED)."""
    rule = access.TABLE[full_method]
    if not rule:
        raise LookupError(f"nobody may call {full_method}")
    return identity_of(sorted(rule, key=lambda principal: (principal == access.AGENT, principal))[0], cluster)


class AllowedStub:
    """A stub whose every method is called as an identity allowed to call it, over a
    mutual-TLS channel per identity: ``await stub.PublishEvent(request)``."""

    def __init__(self, pki: TestPki, address: str, server: str, stub_class: Any, service_name: str) -> None:
        self._pki, self._address, self._server = pki, address, server
        self._stub_class, self._service = stub_class, service_name
        self._channels: dict[Identity, tuple[ReloadingChannel, Any]] = {}

    def as_(self, identity: Identity) -> Any:
        """The plain stub presenting ``identity``."""
        if identity not in self._channels:
            channel = self._pki.channel(self._address, self._server, identity)
            self._channels[identity] = (channel, self._stub_class(channel))
        return self._channels[identity][1]

    def __getattr__(self, method: str) -> Any:
        if method.startswith("_"):
            raise AttributeError(method)
        return getattr(self.as_(allowed_identity(f"{self._service}/{method}", self._pki.cluster)), method)

    async def close(self) -> None:
        for channel, _ in self._channels.values():
            await channel.close()
        self._channels.clear()

    async def __aenter__(self) -> AllowedStub:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


__all__ = ["AllowedStub", "Kind", "allowed_identity", "drop_leader_key", "hold_leader_key", "identity_of"]


def gateway_client(pki: TestPki, address: str, as_: Identity | None = None) -> AsyncClient:
    """ringrift_client at a gateway, presenting ``as_`` (a test administrator by default):
    how users and the CLI call the facade."""
    caller = as_ or pki.admin()
    files = pki.files(caller)
    return AsyncClient(Context(address, files.ca, files.cert, files.key, server_name=any_gateway(caller.cluster)))
