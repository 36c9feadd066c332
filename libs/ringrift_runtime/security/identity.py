"""Who a caller is. Every process and user of a cluster has an identity, carried in its
certificate as a SAN URI ``spiffe://ringrift/<cluster>/<kind>/<name...>``, or (users only)
presented as a bearer token. Nothing a caller puts in a request field is an identity."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

TRUST_DOMAIN = "ringrift"
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")


class Kind(enum.StrEnum):
    SERVICE = "service"  # a manager service: name = state, nodes, sync, jobs, selfplay, training
    GATEWAY = "gateway"  # a gateway replica: name = its instance id
    AGENT = "agent"  # a node agent: name = its node id
    USER = "user"  # a person or a tool: role and name


class Role(enum.StrEnum):
    """What a user may do on the gateway: read, operate the cluster, or everything."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"


@dataclass(frozen=True)
class Identity:
    kind: Kind
    name: str
    cluster: str
    role: Role | None = None  # users only

    def __post_init__(self) -> None:
        if not NAME_PATTERN.match(self.name) or not NAME_PATTERN.match(self.cluster):
            raise ValueError(f"{self.name[:40]!r} in {self.cluster[:40]!r} is not a valid identity name")
        if (self.kind is Kind.USER) != (self.role is not None):
            raise ValueError("a user identity has a role; no other identity has one")

    @property
    def uri(self) -> str:
        path = [self.kind.value, *([self.role.value] if self.role else []), self.name]
        return f"spiffe://{TRUST_DOMAIN}/{self.cluster}/" + "/".join(path)

    @property
    def dns(self) -> str:
        """The DNS name every certificate of this identity carries (``state.service.demo.ringrift``):
        a client checks the server it reaches is the identity it expects by this name, wherever
        the server runs."""
        return dns_name(self.kind, self.name, self.cluster)

    def __str__(self) -> str:
        role = f"{self.role.value}:" if self.role else ""
        return f"{self.kind.value}:{role}{self.name}"

    @classmethod
    def parse(cls, uri: str) -> Identity:
        """The identity a SAN URI names; ValueError for anything else."""
        prefix = f"spiffe://{TRUST_DOMAIN}/"
        if not uri.startswith(prefix):
            raise ValueError(f"not a {TRUST_DOMAIN} identity: {uri[:60]!r}")
        parts = uri[len(prefix) :].split("/")
        if len(parts) == 3 and parts[1] in (k.value for k in Kind if k is not Kind.USER):
            return cls(Kind(parts[1]), parts[2], parts[0])
        if len(parts) == 4 and parts[1] == Kind.USER.value and parts[2] in (r.value for r in Role):
            return cls(Kind.USER, parts[3], parts[0], Role(parts[2]))
        raise ValueError(f"not a {TRUST_DOMAIN} identity: {uri[:60]!r}")


def dns_name(kind: Kind, name: str, cluster: str) -> str:
    return f"{name}.{kind.value}.{cluster}.{TRUST_DOMAIN}"


def any_gateway(cluster: str) -> str:
    """The DNS name every gateway replica's certificate carries (users reach any replica)."""
    return f"{Kind.GATEWAY.value}.{cluster}.{TRUST_DOMAIN}"


def service(name: str, cluster: str) -> Identity:
    return Identity(Kind.SERVICE, name, cluster)


def gateway(name: str, cluster: str) -> Identity:
    return Identity(Kind.GATEWAY, name, cluster)


def agent(node_id: str, cluster: str) -> Identity:
    return Identity(Kind.AGENT, node_id, cluster)


def user(name: str, role: Role, cluster: str) -> Identity:
    return Identity(Kind.USER, name, cluster, role)
