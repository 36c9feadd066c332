"""A three-member etcd: the clients know every member and move on when theirs dies.

Each test kills (SIGKILL) the member every client starts on, after making it the raft
leader where the test says so (the worst case: the cluster must elect a new raft leader
while the clients move)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ringrift.common.v1 import common_pb2 as C
from ringrift_runtime.cluster.election import LeaderElection
from ringrift_runtime.cluster.etcd import ETCD_IDENTITY, Keyspace, make_client
from ringrift_runtime.cluster.lease import LeaseKeeper
from ringrift_runtime.cluster.leased import LeasedKey
from ringrift_runtime.local.etcd import EtcdCluster
from ringrift_runtime.security.identity import service
from ringrift_runtime.settings import EtcdSettings
from ringrift_runtime.testing.pki import TestPki
from tests.callers import gateway_client
from tests.integration.cluster.conftest import ELECTION_TTL, LEASE_TTL, LocalCluster, Terms
from tests.integration.cluster.test_jobs_end_to_end import spec, start_cluster

TTL = 5  # the default lease TTL of agents and services


@pytest.fixture
def members(tmp_path: Path, pki: TestPki) -> Iterator[EtcdCluster]:
    cluster = EtcdCluster(
        tmp_path / "etcd", tls=pki.files(service(ETCD_IDENTITY, "test")), client=pki.files(pki.admin())
    )
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


def settings_of(members: EtcdCluster, **overrides) -> EtcdSettings:
    return members.client_settings("test", **{"lease_ttl_seconds": TTL, **overrides})


def test_three_members_serve_one_keyspace(members: EtcdCluster) -> None:
    assert len(members.endpoints) == 3 and len(set(members.endpoints)) == 3
    members.members[0].etcdctl("put", "/k", "v")
    for member in members.members:  # every member answers with the same data
        assert member.etcdctl("get", "--print-value-only", "/k").stdout.strip() == b"v"
    assert len({status["leader"] for status in members.status()}) == 1


@pytest.mark.slow
@pytest.mark.parametrize("raft_leader", [False, True], ids=["follower", "raft-leader"])
async def test_requests_lease_and_leased_key_survive_their_member(members: EtcdCluster, raft_leader: bool) -> None:
    settings = settings_of(members)
    await asyncio.to_thread(members.move_leader, 0 if raft_leader else 1)
    keeper = LeaseKeeper(settings, ttl=TTL, name="t")  # starts on member 0, as every client does
    lease_id = await keeper.start()

    async def value() -> bytes:
        return b"node"

    leased = LeasedKey(settings, b"/nodes/n1", value, "n1", refresh_seconds=0.3)
    client = make_client(settings)
    try:
        await leased.start()
        await asyncio.wait_for(leased.registered.wait(), 5)
        first = await client.get(b"/nodes/n1")
        assert first is not None

        await asyncio.to_thread(members.members[0].stop, True)
        errors = 0
        for index in range(20):  # writes go on through the other members
            try:
                await client.put(b"/w", str(index).encode(), lease=lease_id)
            except Exception:
                errors += 1
            await asyncio.sleep(0.1)
        await asyncio.sleep(TTL)  # past one TTL: the lease and the key were kept alive elsewhere

        assert errors == 0
        assert client.failovers >= 1 and client.endpoint != members.members[0].endpoint
        assert keeper.valid() and keeper.lease_id == lease_id
        assert (await client.get(b"/w")).value == b"19"
        now = await client.get(b"/nodes/n1")
        assert now is not None and now.create_revision == first.create_revision  # never registered again
        assert leased.registrations == 1
    finally:
        await leased.stop()
        await keeper.stop()
        await client.close()


@pytest.mark.slow
@pytest.mark.parametrize("hangs", [False, True], ids=["killed", "hangs"])
async def test_leader_keeps_leading_when_its_member_dies(members: EtcdCluster, hangs: bool) -> None:
    """A follower member dies (or hangs: SIGSTOP, nothing answers and no connection is
    refused) under the leader and a waiting candidate: no leader change, the leader never
    stops acting, not for a moment, and the candidate keeps its place in line."""
    settings = settings_of(members, election_ttl_seconds=2)
    await asyncio.to_thread(members.move_leader, 1)
    led = Terms("a", "b")
    terms, elected, lead_as = led.terms, led.elected, led.lead_as

    first = LeaderElection(settings, Keyspace("t"), "a", b"a")
    second = LeaderElection(settings, Keyspace("t"), "b", b"b")
    try:
        await first.start(lead_as("a"))
        await asyncio.wait_for(elected["a"].wait(), 5)
        await second.start(lead_as("b"))
        await asyncio.sleep(0.5)
        if hangs:
            members.members[0].pause()
        else:
            await asyncio.to_thread(members.members[0].stop, True)
        lapses = 0  # samples at which the leader could not act
        end = time.monotonic() + 3 * settings.election_ttl_seconds
        while time.monotonic() < end:
            lapses += not first.is_leader
            await asyncio.sleep(0.01)
        assert lapses == 0
        assert first.is_leader and not second.is_leader
        assert terms == [("a", terms[0][1])]  # one term, never interrupted

        started = time.monotonic()
        await first.resign()  # the candidate that kept its place takes over at once
        await asyncio.wait_for(elected["b"].wait(), 5)
        assert time.monotonic() - started < 1.0
    finally:
        if hangs:
            members.members[0].resume()
        await first.resign()
        await second.resign()


def node_registrations(members: EtcdCluster, through: int) -> dict[str, int]:
    """Every agent's membership key and the revision it was created at (a new lease, a
    new registration, would create it again)."""
    reply = members.members[through].etcdctl("get", "--prefix", "/ringrift/test/nodes/", "-w", "json")
    return {
        base64.b64decode(kv["key"]).decode(): int(kv["create_revision"])
        for kv in json.loads(reply.stdout).get("kvs", [])
    }


@pytest.mark.slow
@pytest.mark.parametrize(
    ("raft_leader", "hangs"),
    [(False, False), (True, False), (False, True)],
    ids=["follower", "raft-leader", "follower-hangs"],
)
async def test_a_cluster_rides_out_the_death_of_its_etcd_member(
    members: EtcdCluster, tmp_path: Path, pki: TestPki, raft_leader: bool, hangs: bool
) -> None:
    """A local cluster (StateService, NodeSelector, JobService, a leading gateway, three
    agents) on a three-member etcd. Under a stream of submissions through the gateway, the
    member every process started on is killed: no call fails, every job succeeds, the
    leader keeps its epoch and every agent keeps its registration. A member that hangs
    (SIGSTOP: its connections stay open and nothing answers, as when its host vanishes
    without a reset) is given up by the deadline, not by a refused connection."""
    cluster = LocalCluster(members, tmp_path / "cluster", pki)
    try:
        await asyncio.to_thread(members.move_leader, 0 if raft_leader else 1)
        await start_cluster(cluster)
        before = await cluster.wait_for_leader()
        await asyncio.sleep(1)
        registered = node_registrations(members, 1)
        assert len(registered) == 3

        errors: list[str] = []
        job_ids: list[str] = []
        async with gateway_client(pki, cluster.processes["gw-a"].address) as gateway:

            async def load(seconds: float) -> None:
                end = time.monotonic() + seconds
                while time.monotonic() < end:
                    try:
                        job_ids.append((await gateway.submit_job(spec=spec("sleep"), timeout=10)).job.job_id)
                        await gateway.get_cluster_status(timeout=10)
                    except Exception as exc:  # any failure a user would see
                        errors.append(f"{type(exc).__name__}: {exc}"[:200])
                    await asyncio.sleep(0.1)

            epochs: list[tuple[float, int]] = []  # (seconds after the kill, epoch) on each change

            async def watch_epoch() -> None:
                while True:
                    epoch = (await cluster.epoch()).epoch
                    if not epochs or epochs[-1][1] != epoch:
                        epochs.append((time.monotonic() - killed, epoch))
                    await asyncio.sleep(0.05)

            running = asyncio.create_task(load(4 * LEASE_TTL + 3))
            await asyncio.sleep(2)
            killed = time.monotonic()
            watching = asyncio.create_task(watch_epoch())
            if hangs:
                members.members[0].pause()
            else:
                await asyncio.to_thread(members.members[0].stop, True)
            await running
            watching.cancel()
            for job_id in job_ids:
                job = await gateway.wait(job_id, timeout=60)
                assert job.state == C.JOB_STATE_SUCCEEDED, (job_id, job.error)

        assert errors == []
        assert len(job_ids) > 20
        assert node_registrations(members, 1) == registered
        after = await cluster.epoch()
        if not raft_leader:  # the cluster's raft is undisturbed: so is the leader
            assert (after.epoch, after.leader_id) == (before.epoch, before.leader_id), epochs
        else:
            # etcd elects a new raft leader (within about a second: RAFT_ARGS); a leader
            # that could not confirm its lease meanwhile steps down, and a leader is back
            # within one election TTL of the kill (seen: no change, or 1.3-1.5 s).
            assert after.epoch <= before.epoch + 1, epochs
            assert all(at <= ELECTION_TTL for at, epoch in epochs if epoch > before.epoch), epochs
    finally:
        if hangs:
            members.members[0].resume()
        await asyncio.to_thread(cluster.stop_all)
