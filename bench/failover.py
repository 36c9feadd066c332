"""How long does the cluster go without a leader when the leader dies?

Kills the leading gateway with SIGKILL N times (two replicas, real etcd, real
StateService, mutual TLS everywhere) and measures the time from the kill until the other
replica has claimed a higher epoch from StateService. Beside it, the raw limit measured in the
same run: how long etcd itself takes to expire a lease of the same TTL and tell a
watcher. Also the graceful handover (SIGTERM) time.

    .venv/bin/python -m bench.failover [--kills 50] [--handovers 10] [--quick] [--json]

``--quick``: 5 kills and 2 handovers (about a minute). ``--json`` prints one object:
ttl_s, kills, handovers, failover_s_p50/_p99/_min/_max, handover_s_*, raw_expiry_s_*.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import tempfile
import time
from pathlib import Path

from bench._common import figures, machine, summary, table
from bench._security import CLUSTER, BenchSecurity, gateway, service
from ringrift.state.v1 import state_pb2, state_pb2_grpc
from ringrift_runtime.cluster.etcd import make_client
from ringrift_runtime.local.etcd import EtcdServer
from ringrift_runtime.local.processes import ServiceProcess

TTL = 2
SECURITY: BenchSecurity | None = None  # set in main


async def leader(state: ServiceProcess) -> state_pb2.GetClusterEpochResponse:
    assert SECURITY is not None
    async with SECURITY.channel(state.address, service("state", CLUSTER), gateway("bench", CLUSTER)) as channel:
        return await state_pb2_grpc.StateServiceStub(channel).GetClusterEpoch(
            state_pb2.GetClusterEpochRequest(), timeout=5
        )


async def wait_above(state: ServiceProcess, epoch: int, timeout: float = 30) -> state_pb2.GetClusterEpochResponse:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reply = await leader(state)
        if reply.epoch > epoch and reply.leader_id:
            return reply
        await asyncio.sleep(0.01)
    raise TimeoutError("no new leader")


async def raw_lease_expiry(etcd: EtcdServer, runs: int) -> list[float]:
    """etcd alone: grant a lease, keep it once, stop; time until a watcher sees the key go."""
    assert SECURITY is not None
    client = make_client(SECURITY.etcd_settings(etcd))
    results = []
    try:
        for index in range(runs):
            key = f"/bench/raw/{index}".encode()
            lease = await client.lease(TTL)
            await client.put(key, b"x", lease=lease.id)
            await asyncio.sleep(TTL / 3)
            await lease.refresh()
            stopped = time.monotonic()  # the owner dies right after a keep-alive (the worst case)
            watch = await client.watch(key)
            async for event in watch:
                if event.kind == "DELETE":
                    break
            results.append(time.monotonic() - stopped)
            await watch.cancel()
    finally:
        await client.close()
    return results


async def main(kills: int, handovers: int, as_json: bool = False) -> None:
    global SECURITY
    root = Path(tempfile.mkdtemp(prefix="ringrift-bench-failover-"))
    SECURITY = BenchSecurity(root, secure=True)
    etcd = SECURITY.etcd(root / "etcd")
    await asyncio.to_thread(etcd.start)
    env = {
        "RINGRIFT_ETCD__ENDPOINTS": f'["{etcd.endpoint}"]',
        "RINGRIFT_ETCD__ELECTION_TTL_SECONDS": str(TTL),
        "RINGRIFT_METRICS__ENABLED": "false",
    }
    state = ServiceProcess(
        "state",
        root / "state",
        env={
            **env,
            **SECURITY.env(service("state", CLUSTER)),
            "RINGRIFT_STATE__DATABASE_URL": f"sqlite+aiosqlite:///{root}/s.db",
        },
    )
    await asyncio.to_thread(state.start)
    env["RINGRIFT_ENDPOINTS__STATE"] = state.address
    gateways = {
        name: ServiceProcess(
            "gateway", root / name, env={**env, **SECURITY.env(gateway(name, CLUSTER)), "RINGRIFT_INSTANCE_ID": name}
        )
        for name in ("gw-a", "gw-b")
    }
    for process in gateways.values():
        await asyncio.to_thread(process.start)
    failovers, graceful = [], []
    try:
        current = await wait_above(state, 0)
        for _ in range(kills):
            victim = gateways[current.leader_id]
            killed = time.monotonic()
            victim.signal(signal.SIGKILL)
            current = await wait_above(state, current.epoch)
            failovers.append(time.monotonic() - killed)
            await asyncio.to_thread(victim.wait, 10)
            await asyncio.to_thread(victim.start)  # back as a follower
        for _ in range(handovers):
            victim = gateways[current.leader_id]
            stopped = time.monotonic()
            victim.signal(signal.SIGTERM)
            current = await wait_above(state, current.epoch)
            graceful.append(time.monotonic() - stopped)
            await asyncio.to_thread(victim.wait, 10)
            await asyncio.to_thread(victim.start)
        raw = await raw_lease_expiry(etcd, max(5, kills // 5))
    finally:
        for process in [*gateways.values(), state]:
            await asyncio.to_thread(process.stop)
        await asyncio.to_thread(etcd.stop)
    if as_json:
        result: dict[str, float] = {"ttl_s": TTL, "kills": kills, "handovers": handovers}
        result.update(figures("failover_s", failovers))
        result.update(figures("handover_s", graceful))
        result.update(figures("raw_expiry_s", raw))
        print(json.dumps(result))
        return
    print(
        table(
            f"Leader failover (election TTL {TTL} s) — {machine()}",
            [
                (
                    "SIGKILL → new epoch registered (s)",
                    summary(failovers),
                    f"raw etcd lease expiry seen by a watcher: {summary(raw)}",
                ),
                ("SIGTERM → new epoch registered (s)", summary(graceful), "—"),
            ],
        )
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--handovers", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="5 kills and 2 handovers")
    parser.add_argument("--json", action="store_true", help="one JSON object of the figures")
    args = parser.parse_args()
    kills, handovers = (5, 2) if args.quick else (args.kills, args.handovers)
    asyncio.run(main(kills, handovers, args.json))
