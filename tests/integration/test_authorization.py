"""The authorization table, end to end over real mutual TLS: every method of every service
(walked from the generated descriptors, plus health and reflection) called as every class
of identity, through the runtime's server interceptor with the real table. Each service
answers every call it lets through with an empty reply, so a call shows only the verdict:
OK (allowed), PERMISSION_DENIED (the identity may not) or UNAUTHENTICATED (no identity).

Beside the walk, the policy ARCHITECTURE.md §9 and the zero-trust issue state is checked
on what the server did, written out here rather than read from the table."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import pytest

from ringrift_contracts import access
from ringrift_runtime.grpc.contracts import SERVICE_BY_PROCESS, service_descriptors
from ringrift_runtime.grpc.server import ServiceRegistration
from ringrift_runtime.security.identity import Identity, Kind, Role, agent, gateway, service, user
from ringrift_runtime.security.tokens import TokenStore
from ringrift_runtime.testing.inprocess import serve_in_process
from ringrift_runtime.testing.pki import TestPki
from ringrift_settings import RingriftSettings

CLUSTER = "test"
HEALTH = ("grpc.health.v1.Health/Check", "grpc.health.v1.Health/Watch")
REFLECTION = "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
JOIN = "ringrift.orchestrator.v1.OrchestratorService/JoinCluster"

IDENTITIES: dict[str, Identity] = {
    **{f"service:{name}": service(name, CLUSTER) for name in access.SERVICES},
    "gateway": gateway("gw-1", CLUSTER),
    "agent": agent("node-1", CLUSTER),
    "viewer": user("vera", Role.VIEWER, CLUSTER),
    "operator": user("otto", Role.OPERATOR, CLUSTER),
    "admin": user("ada", Role.ADMIN, CLUSTER),
}


def ringrift_methods() -> dict[str, tuple[bool, bool]]:
    """ "package.Service/Method" -> (client streaming, server streaming), from the descriptors."""
    return {
        f"{full_name}/{method.name}": (method.client_streaming, method.server_streaming)
        for full_name, descriptor in service_descriptors().items()
        for method in descriptor.methods
    }


def test_every_method_of_every_service_has_an_entry_and_nothing_else_does() -> None:
    methods = ringrift_methods()
    assert set(SERVICE_BY_PROCESS.values()) == {m.partition("/")[0] for m in methods}
    missing = sorted(set(methods) - set(access.TABLE))
    assert missing == [], f"RPCs with no entry in ringrift_contracts/access.py (refused to everyone): {missing}"
    extra = sorted(set(access.TABLE) - set(methods) - set(HEALTH) - {REFLECTION, REFLECTION.replace("v1alpha", "v1")})
    assert extra == [], f"entries for RPCs that do not exist: {extra}"


def _echo_handlers(full_name: str) -> grpc.GenericRpcHandler:
    """Every method of the service answers an empty reply (raw bytes, no messages parsed)."""

    async def unary(request: bytes, context) -> bytes:
        return b""

    async def server_stream(request: bytes, context) -> AsyncIterator[bytes]:
        return
        yield b""

    handlers = {}
    for method in service_descriptors()[full_name].methods:
        handlers[method.name] = (
            grpc.unary_stream_rpc_method_handler(server_stream)
            if method.server_streaming
            else grpc.unary_unary_rpc_method_handler(unary)
        )
    return grpc.method_handlers_generic_handler(full_name, handlers)


def _registration(full_name: str) -> ServiceRegistration:
    return ServiceRegistration(
        full_name, None, lambda _, server: server.add_generic_rpc_handlers((_echo_handlers(full_name),))
    )


@pytest.fixture
async def server(pki: TestPki, tmp_path: Path):
    """Every RingRift service on one server with the real table; a token port too."""
    tokens = tmp_path / "tokens.json"
    settings = RingriftSettings(
        server={"port": 0},
        metrics={"enabled": False},
        etcd={"cluster_name": CLUSTER},
        security={**pki.security(service("state", CLUSTER)), "tokens_file": tokens},
    )
    registrations = [_registration(name) for name in sorted(set(SERVICE_BY_PROCESS.values()))]
    async with serve_in_process(registrations, settings, access=access, token_port=0) as host:
        yield host, TokenStore(tokens)


async def _call(channel: grpc.aio.Channel, method: str, streaming: bool, metadata=None) -> str:
    """The status code name of one call with an empty request."""
    try:
        if method == REFLECTION:
            call = channel.stream_stream(f"/{method}")(iter([b""]), metadata=metadata, timeout=10)
            async for _ in call:
                break
            call.cancel()
        elif streaming:
            async for _ in channel.unary_stream(f"/{method}")(b"", metadata=metadata, timeout=10):
                pass
        else:
            await channel.unary_unary(f"/{method}")(b"", metadata=metadata, timeout=10)
    except grpc.aio.AioRpcError as exc:
        return exc.code().name
    return "OK"


async def _walk(channel: grpc.aio.Channel, metadata=None) -> dict[str, str]:
    methods = {m: streaming for m, (_, streaming) in ringrift_methods().items()}
    methods |= {HEALTH[0]: False, REFLECTION: True}
    return {m: await _call(channel, m, streaming, metadata) for m, streaming in sorted(methods.items())}


@asynccontextmanager
async def _as(pki: TestPki, host, identity: Identity):
    async with pki.channel(host.address, service("state", CLUSTER), identity) as channel:
        yield channel


async def test_every_identity_class_gets_exactly_what_the_table_allows(server, pki: TestPki) -> None:
    host, _ = server
    seen: dict[str, dict[str, str]] = {}
    for label, identity in IDENTITIES.items():
        async with _as(pki, host, identity) as channel:
            seen[label] = await _walk(channel)
    for label, verdicts in seen.items():
        for method, code in verdicts.items():
            expected = "OK" if access.allowed(method, IDENTITIES[label]) else "PERMISSION_DENIED"
            assert code == expected, (label, method, code)

    def callers(method: str) -> set[str]:
        return {label for label, verdicts in seen.items() if verdicts[method] == "OK"}

    state, jobs, agent_svc = (
        "ringrift.state.v1.StateService",
        "ringrift.jobs.v1.JobService",
        "ringrift.agent.v1.NodeAgentService",
    )
    facade = "ringrift.orchestrator.v1.OrchestratorService"
    users = {"viewer", "operator", "admin"}
    # Nobody may choose an epoch; only a gateway may claim one (StateService checks etcd too).
    assert callers(f"{state}/AdvanceEpoch") == set()
    assert callers(f"{state}/ClaimEpoch") == {"gateway"}
    # StateService writes: from the services that own the data and the gateway, never agents or users.
    for write in ("CreateJobs", "TransitionJobs", "SetModelStatus", "RegisterModel", "PutRatings", "PersistState"):
        assert callers(f"{state}/{write}") and not callers(f"{state}/{write}") & ({"agent"} | users), write
    assert callers(f"{state}/TransitionJobs") == {"service:jobs"}
    assert callers(f"{state}/SetModelStatus") == {"service:training"}
    # Agents run and cancel jobs only for JobService (the leader's fenced path).
    assert callers(f"{agent_svc}/RunJob") == callers(f"{agent_svc}/CancelJob") == {"service:jobs"}
    # Files move only between agents and for the sync service.
    for files in ("ReadFile", "OpenFileStream"):
        assert callers(f"{agent_svc}/{files}") == {"agent", "service:sync"}, files
    assert callers(f"{agent_svc}/PullFile") == {"service:sync"}
    # Agents publish events (only RECORD_SKIPPED: StateService checks the type); users never do.
    assert "agent" in callers(f"{state}/PublishEvent") and not callers(f"{state}/PublishEvent") & users
    # Reports come from agents only (which attempts, JobService checks by certificate).
    assert callers(f"{jobs}/ReportJobEvent") == {"agent"}
    # Users only on the gateway, by role.
    for method in ringrift_methods():
        if not method.startswith(facade):
            assert not callers(method) & users, method
    assert callers(f"{facade}/ListJobs") >= users and callers(f"{facade}/SubmitJob") == {"operator", "admin"}
    assert callers(f"{facade}/PauseLoop") == {"operator", "admin"}
    # Joining needs no identity (the one-time token is checked by the gateway); renewing is a node's.
    assert callers(JOIN) == set(IDENTITIES) and callers(f"{facade}/RenewCertificate") == {"agent"}
    # Health is open and reflection is for any identity of the cluster.
    assert all(verdicts[HEALTH[0]] == "OK" and verdicts[REFLECTION] == "OK" for verdicts in seen.values())


async def test_callers_without_an_identity_of_the_cluster(server, pki: TestPki, tmp_path: Path) -> None:
    """No certificate: the main port refuses the handshake and the token port answers
    UNAUTHENTICATED (health aside); a certificate of another cluster or another CA gets
    nothing either; plaintext gets nothing."""
    host, _ = server
    token_address = f"127.0.0.1:{host.token_port_bound}"
    server_name = service("state", CLUSTER).dns
    anonymous = grpc.aio.secure_channel(
        token_address,
        grpc.ssl_channel_credentials(pki.ca_file.read_bytes()),
        options=[("grpc.ssl_target_name_override", server_name)],
    )
    async with anonymous:
        verdicts = await _walk(anonymous)
        wrong = await _walk(anonymous, metadata=(("authorization", "Bearer rrt.0000.not-a-token"),))
    open_to_all = {HEALTH[0], JOIN}  # a joining node's credential is the token in its request
    assert all(verdicts[method] == "OK" for method in open_to_all)
    assert {code for method, code in verdicts.items() if method not in open_to_all} == {"UNAUTHENTICATED"}
    assert {code for method, code in wrong.items() if method not in open_to_all} == {"UNAUTHENTICATED"}

    async with _as(pki, host, user("mallory", Role.ADMIN, "other-cluster")) as other:
        assert await _call(other, "ringrift.orchestrator.v1.OrchestratorService/ListJobs", False) == "UNAUTHENTICATED"
    foreign = TestPki(tmp_path / "foreign", cluster=CLUSTER)  # same names, another CA
    async with foreign.channel(host.address, service("state", CLUSTER), foreign.admin()) as channel:
        assert await _call(channel, "ringrift.state.v1.StateService/GetClusterEpoch", False) == "UNAVAILABLE"
    async with grpc.aio.insecure_channel(host.address) as plaintext:
        assert await _call(plaintext, HEALTH[0], False) == "UNAVAILABLE"
    # A client checks whom it reached: the state service's certificate is not the jobs service's.
    async with pki.channel(host.address, service("jobs", CLUSTER), IDENTITIES["gateway"]) as misdirected:
        assert await _call(misdirected, HEALTH[0], False) == "UNAVAILABLE"


async def test_a_bearer_token_acts_with_its_users_role_until_it_expires(server, pki: TestPki) -> None:
    host, tokens = server
    viewer = tokens.add(user("vera", Role.VIEWER, CLUSTER), 3600)
    expired = tokens.add(user("old", Role.ADMIN, CLUSTER), -1)
    channel = grpc.aio.secure_channel(
        f"127.0.0.1:{host.token_port_bound}",
        grpc.ssl_channel_credentials(pki.ca_file.read_bytes()),
        options=[("grpc.ssl_target_name_override", service("state", CLUSTER).dns)],
    )
    facade = "ringrift.orchestrator.v1.OrchestratorService"
    async with channel:
        as_viewer = (("authorization", f"Bearer {viewer}"),)
        assert await _call(channel, f"{facade}/ListJobs", False, as_viewer) == "OK"
        assert await _call(channel, f"{facade}/SubmitJob", False, as_viewer) == "PERMISSION_DENIED"
        assert (
            await _call(channel, "ringrift.state.v1.StateService/ListEvents", False, as_viewer) == "PERMISSION_DENIED"
        )
        as_expired = (("authorization", f"Bearer {expired}"),)
        assert await _call(channel, f"{facade}/ListJobs", False, as_expired) == "UNAUTHENTICATED"


async def test_a_denial_names_the_identity_and_the_method(server, pki: TestPki) -> None:
    host, _ = server
    async with _as(pki, host, IDENTITIES["agent"]) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await channel.unary_unary("/ringrift.agent.v1.NodeAgentService/RunJob")(b"", timeout=10)
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "agent:node-1" in caught.value.details() and "NodeAgentService/RunJob" in caught.value.details()


def test_identity_classes_cover_every_principal_of_the_table() -> None:
    principals = set(itertools.chain.from_iterable(access.TABLE.values())) - {access.OPEN, access.ANY}
    covered = set(itertools.chain.from_iterable(access.principals(i) for i in IDENTITIES.values()))
    assert principals <= covered, principals - covered
    assert {i.kind for i in IDENTITIES.values()} == set(Kind)
