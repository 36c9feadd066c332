"""Lease keeper, watched prefix cache, leased keys and election against a real etcd."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import pytest

from ringrift_runtime.cluster.cache import ChangeKind, PrefixCache
from ringrift_runtime.cluster.election import LeaderElection
from ringrift_runtime.cluster.etcd import Keyspace, make_client
from ringrift_runtime.cluster.lease import LeaseKeeper
from ringrift_runtime.cluster.leased import LeasedKey
from ringrift_runtime.local.etcd import EtcdServer
from ringrift_runtime.settings import EtcdSettings
from tests.integration.cluster.conftest import Terms


def etcd_settings(etcd: EtcdServer, **overrides) -> EtcdSettings:
    values = {"lease_ttl_seconds": 2, "election_ttl_seconds": 2}
    return etcd.client_settings("test", **{**values, **overrides})


async def _next(queue: asyncio.Queue, timeout: float = 5.0):
    return await asyncio.wait_for(queue.get(), timeout)


async def test_lease_is_kept_alive_and_revoked_on_stop(etcd: EtcdServer) -> None:
    settings = etcd_settings(etcd)
    keeper = LeaseKeeper(settings, ttl=2, name="t")
    lease_id = await keeper.start()
    client = make_client(settings)
    try:
        await client.put(b"/k", b"v", lease=lease_id)
        await asyncio.sleep(3.5)  # well past the TTL
        assert keeper.valid() and keeper.keepalives >= 3
        assert (await client.get(b"/k")).value == b"v"
        await keeper.stop(revoke=True)
        assert await client.get(b"/k") is None
    finally:
        await client.close()


def _burn(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def _burner(seconds: float) -> subprocess.Popen[bytes]:
    """A process keeping one CPU busy for ``seconds`` (started, not forked: this process
    has threads, and forking one is deprecated since Python 3.12)."""
    code = f"import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end:\n    pass\n"
    return subprocess.Popen([sys.executable, "-c", code])


@pytest.mark.allow_slow_callbacks  # the test blocks its own event loop on purpose
async def test_lease_survives_a_blocked_event_loop_and_busy_cpus(etcd: EtcdServer) -> None:
    settings = etcd_settings(etcd)
    keeper = LeaseKeeper(settings, ttl=2, name="busy")
    lease_id = await keeper.start()
    client = make_client(settings)
    burners: list[subprocess.Popen[bytes]] = []
    try:
        await client.put(b"/busy", b"v", lease=lease_id)
        burners = [_burner(6.0) for _ in range(2)]
        _burn(5.0)  # a long scan on the event loop: 2.5 x TTL without yielding
        assert keeper.valid(), keeper.lost_reason
        assert (await client.get(b"/busy")) is not None
        assert keeper.keepalives >= 5
    finally:
        for burner in burners:
            burner.wait()
        await keeper.stop()
        await client.close()


async def test_lease_loss_is_detected_when_etcd_is_gone(etcd: EtcdServer) -> None:
    settings = etcd_settings(etcd)
    keeper = LeaseKeeper(settings, ttl=2, name="gone")
    await keeper.start()
    lost: list[str] = []
    keeper.on_lost(lost.append)
    await asyncio.to_thread(etcd.stop, True)
    reason = await asyncio.wait_for(keeper.wait_lost(), 5)
    assert "TTL" in reason and lost == [reason]
    assert not keeper.valid()
    await keeper.stop()


async def test_cache_follows_changes_and_converges_after_etcd_restart(etcd: EtcdServer) -> None:
    settings = etcd_settings(etcd)
    client = make_client(settings)
    await client.put(b"/p/a", b"1")
    cache = PrefixCache(settings, b"/p/", lambda name, raw: raw.decode(), "test")
    changes = cache.subscribe()
    try:
        await cache.start()
        assert cache.values() == {"a": "1"}
        assert (await _next(changes)).kind == ChangeKind.JOINED
        await client.put(b"/p/b", b"2")
        await client.put(b"/p/a", b"3")
        await client.delete(b"/p/b")
        kinds = [(c.kind, c.name) for c in [await _next(changes) for _ in range(3)]]
        assert kinds == [(ChangeKind.JOINED, "b"), (ChangeKind.UPDATED, "a"), (ChangeKind.LEFT, "b")]

        await asyncio.to_thread(etcd.stop)
        await client.close()
        await asyncio.to_thread(etcd.start)
        client = make_client(settings)
        await client.put(b"/p/c", b"4")
        await client.delete(b"/p/a")
        deadline = time.monotonic() + 10
        while cache.values() != {"c": "4"} and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert cache.values() == {"c": "4"}
        assert cache.relists >= 2
    finally:
        await cache.stop()
        await client.close()


async def test_leased_key_registers_again_after_etcd_restart(etcd: EtcdServer) -> None:
    settings = etcd_settings(etcd)

    async def value() -> bytes:
        return b"node"

    leased = LeasedKey(settings, b"/nodes/n1", value, "n1", refresh_seconds=0.5)
    client = make_client(settings)
    try:
        await leased.start()
        await asyncio.wait_for(leased.registered.wait(), 5)
        await asyncio.to_thread(etcd.stop, True)
        await asyncio.sleep(3)  # past the TTL while etcd is down
        await asyncio.to_thread(etcd.start)
        deadline = time.monotonic() + 10
        while leased.registrations < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert leased.registrations >= 2
        await asyncio.sleep(2.5)  # the new registration is kept alive
        assert (await client.get(b"/nodes/n1")) is not None
        await leased.stop()
        assert await client.get(b"/nodes/n1") is None
    finally:
        await leased.stop()
        await client.close()


async def test_election_lowest_candidate_leads_and_hands_over_on_resign(etcd: EtcdServer) -> None:
    settings = etcd_settings(etcd)
    keyspace = Keyspace("t")
    led = Terms("a", "b")
    terms, elected, lead_as = led.terms, led.elected, led.lead_as

    first = LeaderElection(settings, keyspace, "a", b"a")
    second = LeaderElection(settings, keyspace, "b", b"b")
    await first.start(lead_as("a"))
    await asyncio.wait_for(elected["a"].wait(), 5)
    await second.start(lead_as("b"))
    await asyncio.sleep(0.5)
    assert first.is_leader and not second.is_leader

    started = time.monotonic()
    await first.resign()
    await asyncio.wait_for(elected["b"].wait(), 5)
    handover = time.monotonic() - started
    assert second.is_leader
    assert terms[0][0] == "a" and terms[1][0] == "b" and terms[1][1] > terms[0][1]
    assert handover < 0.5, handover
    await second.resign()
