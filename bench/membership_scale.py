"""What do 1,000 members cost one etcd?

Registers N simulated agents (each its own lease with a NodeInfo under it, kept alive
every TTL/3 as real agents do) on one etcd and measures: time to register all, etcd's
CPU and memory while they are kept alive, how long a membership cache takes to list
them, and how fast a cache sees a member's update. Reference in the same run: the same
number of plain puts without leases (the raw write limit of this etcd).

    .venv/bin/python -m bench.membership_scale [--members 1000] [--rounds 5] [--quick] [--json]

``--quick``: one measured round after the warm-up (under a minute). ``--json`` prints one
object: members, rounds, ttl_s, register_s, plain_puts_s, etcd_cpu_percent, etcd_rss_mb,
list_ms, update_ms (medians over the rounds).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from bench._common import machine, median_range, table
from bench._security import BenchSecurity
from ringrift.common.v1 import common_pb2
from ringrift_contracts.membership import membership_cache
from ringrift_runtime.cluster.cache import ChangeKind
from ringrift_runtime.cluster.etcd import Keyspace, make_client

TTL = 5
CONCURRENCY = 50


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def node_info(index: int) -> bytes:
    return common_pb2.NodeInfo(
        node_id=f"sim-{index}",
        address=f"127.0.0.1:{20000 + index}",
        declared=common_pb2.NodeCapabilities(
            gpu=common_pb2.GpuInfo(model="NVIDIA A100", count=8, memory_mb=81920), cpu_cores=64, ram_mb=512_000
        ),
        metrics=common_pb2.NodeMetrics(cpu_percent=40, memory_percent=30, running_jobs_by_kind={"selfplay": 6}),
    ).SerializeToString()


async def bounded(coroutines, limit: int) -> list:
    semaphore = asyncio.Semaphore(limit)

    async def run(coroutine):
        async with semaphore:
            return await coroutine

    return await asyncio.gather(*(run(c) for c in coroutines))


async def main(members: int, rounds: int, as_json: bool = False) -> None:
    root = Path(tempfile.mkdtemp(prefix="ringrift-bench-members-"))
    security = BenchSecurity(root, secure=True)  # etcd with client certificates, as clusters run it
    etcd = security.etcd(root / "etcd")
    await asyncio.to_thread(etcd.start)
    settings = security.etcd_settings(etcd).model_copy(update={"lease_ttl_seconds": TTL})
    keyspace = Keyspace("bench")
    client = make_client(settings)
    register, plain, listing, update, cpu, rss = [], [], [], [], [], []
    try:
        for round_index in range(rounds + 1):  # the first round warms up
            started = time.monotonic()
            await bounded(
                (client.put(f"/bench/plain/{round_index}/{i}".encode(), node_info(i)) for i in range(members)),
                CONCURRENCY,
            )
            plain_time = time.monotonic() - started

            async def join(index: int) -> int:
                lease = await client.lease(TTL)
                await client.put(keyspace.node(f"sim-{index}"), node_info(index), lease=lease.id)
                return lease.id

            started = time.monotonic()
            leases = await bounded((join(i) for i in range(members)), CONCURRENCY)
            register_time = time.monotonic() - started

            stop = asyncio.Event()

            async def keep_alive(stop: asyncio.Event = stop, leases: list = leases) -> None:
                while not stop.is_set():
                    await bounded((client.refresh_lease(lease) for lease in leases), CONCURRENCY)
                    try:
                        await asyncio.wait_for(stop.wait(), TTL / 3)
                    except TimeoutError:
                        pass

            keeper = asyncio.ensure_future(keep_alive())
            cpu_before, wall_before = cpu_seconds(etcd.pid), time.monotonic()
            cache = membership_cache(settings)
            changes = cache.subscribe()
            started = time.monotonic()
            await cache.start()
            list_time = time.monotonic() - started
            assert len(cache.values()) == members, len(cache.values())
            while not changes.empty():
                changes.get_nowait()
            latencies = []
            for sample in range(20):
                index = sample * (members // 20)
                sent = time.monotonic()
                await client.put(keyspace.node(f"sim-{index}"), node_info(index), lease=leases[index])
                while True:
                    change = await asyncio.wait_for(changes.get(), 5)
                    if change.kind == ChangeKind.UPDATED and change.name == f"sim-{index}":
                        break
                latencies.append((time.monotonic() - sent) * 1000)
            await asyncio.sleep(max(0.0, 2 * TTL - (time.monotonic() - wall_before)))
            etcd_cpu = 100 * (cpu_seconds(etcd.pid) - cpu_before) / (time.monotonic() - wall_before)
            etcd_rss = rss_mb(etcd.pid)
            stop.set()
            await keeper
            await cache.stop()
            await bounded((client.revoke_lease(lease) for lease in leases), CONCURRENCY)
            if round_index == 0:
                continue
            plain.append(plain_time)
            register.append(register_time)
            listing.append(list_time * 1000)
            update.append(sorted(latencies)[len(latencies) // 2])
            cpu.append(etcd_cpu)
            rss.append(etcd_rss)
    finally:
        await client.close()
        await asyncio.to_thread(etcd.stop)
    if as_json:
        medians = {
            "register_s": register,
            "plain_puts_s": plain,
            "etcd_cpu_percent": cpu,
            "etcd_rss_mb": rss,
            "list_ms": listing,
            "update_ms": update,
        }
        result: dict[str, float] = {"members": members, "rounds": rounds, "ttl_s": TTL}
        result.update({name: round(statistics.median(values), 3) for name, values in medians.items()})
        print(json.dumps(result))
        return
    print(
        table(
            f"{members} simulated members on one etcd (TTL {TTL} s, keep-alive every TTL/3) — {machine()}",
            [
                (
                    f"register {members} members, s (lease + put)",
                    median_range(register),
                    f"{members} plain puts: {median_range(plain)}",
                ),
                ("etcd CPU % while keeping them alive", median_range(cpu), "—"),
                ("etcd RSS MB", median_range(rss), "—"),
                ("membership cache: list all, ms", median_range(listing), "—"),
                ("update seen by the cache, median ms", median_range(update), "—"),
            ],
        )
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="one measured round")
    parser.add_argument("--json", action="store_true", help="one JSON object of the figures")
    args = parser.parse_args()
    asyncio.run(main(args.members, 1 if args.quick else args.rounds, args.json))
