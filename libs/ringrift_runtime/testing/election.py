"""Holding an election key in etcd the way a campaigning gateway does, for tests and
benchmarks that need an issued epoch without running a gateway (StateService issues an
epoch only to the gateway whose key is the lowest under the leader prefix)."""

from __future__ import annotations

import json

from ringrift_runtime.aio import quietly
from ringrift_runtime.cluster.etcd import Keyspace, make_client
from ringrift_runtime.settings import EtcdSettings


async def hold_leader_key(settings: EtcdSettings, candidate: str, ttl: int = 60) -> tuple[str, int]:
    """Put an election key naming ``candidate`` under a lease; (key after the leader
    prefix, lease id). It leads while it is the lowest."""
    keyspace = Keyspace(settings.cluster_name)
    client = make_client(settings)
    try:
        lease = await client.lease(ttl)
        key = keyspace.candidate(lease.id)
        value = json.dumps({"candidate": candidate, "address": "127.0.0.1:1"}).encode()
        await client.put(key, value, lease=lease)
        return key[len(keyspace.leader) :].decode(), lease.id
    finally:
        await quietly(client.close())


async def drop_leader_key(settings: EtcdSettings, lease_id: int) -> None:
    client = make_client(settings)
    try:
        await client.revoke_lease(lease_id)
    finally:
        await quietly(client.close())
