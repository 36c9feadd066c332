"""A local cluster of real processes for failure tests: one etcd (or three members), a StateService on
SQLite, gateway replicas and agents, each started from its console script."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from ringrift.state.v1 import state_pb2, state_pb2_grpc
from ringrift_runtime.local.etcd import EtcdCluster, EtcdServer
from ringrift_runtime.local.processes import ServiceProcess
from ringrift_runtime.security.identity import Identity, agent, gateway
from ringrift_runtime.security.identity import service as identity_service
from ringrift_runtime.testing.pki import TestPki
from tests.callers import hold_leader_key

CLUSTER = "test"
ELECTION_TTL = 2
LEASE_TTL = 2
PIPELINE_CATALOG = Path(__file__).resolve().parents[1] / "catalogs" / "pipeline.toml"


class Terms:
    """Who led, in order, with each term's epoch: ``lead_as(name)`` is the callback a
    candidate leads with; ``elected[name]`` is set once it leads."""

    def __init__(self, *names: str) -> None:
        self.terms: list[tuple[str, int]] = []
        self.elected = {name: asyncio.Event() for name in names}

    def lead_as(self, name: str):
        async def lead(leadership) -> None:
            self.terms.append((name, leadership.epoch))
            self.elected[name].set()
            await asyncio.Event().wait()  # leads until its leadership ends

        return lead


def identity_of(service: str, name: str, env: dict[str, str]) -> Identity:
    """The identity a process of the local cluster runs as (its certificate's)."""
    if service == "gateway":
        return gateway(name, CLUSTER)
    if service == "agent":
        return agent(env["RINGRIFT_AGENT__NODE_ID"], CLUSTER)
    return identity_service(service, CLUSTER)


class LocalCluster:
    def __init__(self, etcd: EtcdServer | EtcdCluster, root: Path, pki: TestPki) -> None:
        self.pki = pki
        self.etcd = etcd
        self.root = root
        self.processes: dict[str, ServiceProcess] = {}
        self.identities: dict[str, Identity] = {}
        self.state: ServiceProcess | None = None

    def base_env(self) -> dict[str, str]:
        env = {
            "RINGRIFT_ETCD__ENDPOINTS": json.dumps(self.etcd.endpoints),  # every member of the etcd
            "RINGRIFT_ETCD__CLUSTER_NAME": CLUSTER,
            "RINGRIFT_ETCD__ELECTION_TTL_SECONDS": str(ELECTION_TTL),
            "RINGRIFT_ETCD__LEASE_TTL_SECONDS": str(LEASE_TTL),
            "RINGRIFT_METRICS__PORT": "0",
            "RINGRIFT_SERVER__GRACE_SECONDS": "2",
            # Failure tests drive their own jobs; the pipeline test turns the loops on.
            "RINGRIFT_GATEWAY__PIPELINE_LOOPS": "false",
        }
        for name, process in self.processes.items():
            if name == process.service and name in ("state", "nodes", "jobs", "sync", "selfplay", "training"):
                env[f"RINGRIFT_ENDPOINTS__{name.upper()}"] = process.address
        return env

    async def start(self, service: str, name: str, **env: str) -> ServiceProcess:
        """Start a process off the event loop (the test's loop also hosts watchers)."""
        identity = identity_of(service, name, env)
        self.identities[name] = identity
        process = ServiceProcess(
            service,
            self.root / name,
            env={**self.base_env(), **self.pki.env(identity), "RINGRIFT_INSTANCE_ID": name, **env},
        )
        self.processes[name] = process  # registered first: stop_all reaches it whatever happens
        await asyncio.to_thread(process.start)
        return process

    async def start_state(self) -> ServiceProcess:
        self.state = await self.start(
            "state", "state", RINGRIFT_STATE__DATABASE_URL=f"sqlite+aiosqlite:///{self.root / 'state.db'}"
        )
        return self.state

    @property
    def tokens_file(self) -> Path:
        """The gateways' bearer tokens (``TokenStore(cluster.tokens_file).add(...)``)."""
        return self.root / "tokens.json"

    async def start_gateway(self, name: str) -> ServiceProcess:
        return await self.start("gateway", name, RINGRIFT_SECURITY__TOKENS_FILE=str(self.tokens_file))

    async def start_agent(self, node_id: str, **env: str) -> ServiceProcess:
        settings = {
            "RINGRIFT_AGENT__NODE_ID": node_id,
            "RINGRIFT_AGENT__DATA_DIR": str(self.root / node_id / "data"),
            "RINGRIFT_AGENT__METRICS_INTERVAL_SECONDS": "1",
            "RINGRIFT_AGENT__TEMPLATES_FILE": str(PIPELINE_CATALOG),
            "RINGRIFT_AGENT__KILL_GRACE_SECONDS": "1",
            **env,
        }
        return await self.start("agent", node_id, **settings)

    @staticmethod
    async def restart(process: ServiceProcess) -> None:
        await asyncio.to_thread(process.stop)
        await asyncio.to_thread(process.start)

    def stop_all(self) -> None:
        """Newest first, as `ringrift down` does: callers go before what they call, so a
        server has no stream of theirs to drain for its grace period."""
        for process in reversed(self.processes.values()):
            process.stop()

    def channel(self, process: str | ServiceProcess, as_: Identity | None = None):
        """A mutual-TLS channel to one of the cluster's processes (by name, or the process),
        presenting ``as_``; by default the identity that usually calls it: a test
        administrator for a gateway, JobService for an agent, a gateway for a manager."""
        name = process if isinstance(process, str) else next(n for n, p in self.processes.items() if p is process)
        kind = self.processes[name].service
        if as_ is None and kind == "agent":
            as_ = identity_service("jobs", CLUSTER)
        elif as_ is None and kind != "gateway":
            as_ = gateway("gw-test", CLUSTER)
        return self.pki.channel(self.processes[name].address, self.identities[name], as_)

    async def epoch(self) -> state_pb2.GetClusterEpochResponse:
        assert self.state is not None
        async with self.channel("state") as channel:
            stub = state_pb2_grpc.StateServiceStub(channel)
            return await stub.GetClusterEpoch(state_pb2.GetClusterEpochRequest(), timeout=5)

    async def issue_epoch(self) -> int:
        """Be the leader without a gateway: hold the lowest election key in etcd as
        gateway gw-test and claim the term's epoch from StateService."""
        key, _ = await hold_leader_key(self.pki.etcd_settings(self.etcd.endpoint), "gw-test")
        async with self.channel("state", gateway("gw-test", CLUSTER)) as channel:
            stub = state_pb2_grpc.StateServiceStub(channel)
            return (await stub.ClaimEpoch(state_pb2.ClaimEpochRequest(leader_key=key), timeout=10)).epoch

    async def wait_for_leader(
        self, timeout: float = 10, above: int = 0, not_leader: str = ""
    ) -> state_pb2.GetClusterEpochResponse:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reply = await self.epoch()
            if reply.epoch > above and reply.leader_id and reply.leader_id != not_leader:
                return reply
            await asyncio.sleep(0.02)
        raise TimeoutError(f"no leader with epoch above {above} within {timeout}s")

    async def events(self, types: list[int] | None = None):
        assert self.state is not None
        from ringrift.common.v1 import common_pb2
        from ringrift_contracts.paging import read_after

        async with self.channel("state") as channel:
            stub = state_pb2_grpc.StateServiceStub(channel)

            async def fetch(after: int):
                request = state_pb2.ListEventsRequest(
                    after_sequence=after, filter=common_pb2.EventFilter(types=types or []), limit=500
                )
                return (await stub.ListEvents(request, timeout=10)).events

            return await read_after(fetch, 0, lambda e: e.sequence)  # every page: a long run has more than one


@pytest.fixture
def cluster(etcd: EtcdServer, tmp_path: Path, pki: TestPki):
    local = LocalCluster(etcd, tmp_path, pki)
    try:
        yield local
    finally:
        local.stop_all()
