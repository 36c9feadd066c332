"""How many cached GetClusterStatus answers per second does a gateway serve?

Starts a real local cluster as `ringrift up` does (pipeline loops off) and, from separate
load processes (so the client's own CPU is not the gateway's), keeps many GetClusterStatus
calls in flight over mutual TLS to one gateway for a fixed time. The gateway computes the
status once per cache period (single flight) and serves the cached answer meanwhile.

    .venv/bin/python -m bench.status_load [--seconds 20] [--clients 2] [--concurrency 64] [--quick] [--json]

``--json`` prints one object: requests_per_s, p50_ms, p99_ms, clients, concurrency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import sys
import time

from bench._cluster import admin_client, gateway_client, local_cluster, wait_ready
from bench._common import machine, percentile
from ringrift_cli.local_cluster import CLIENT_FILE, LocalCluster


async def _load(config: str, seconds: float, concurrency: int) -> list[float]:
    async with admin_client(config) as gateway:
        latencies: list[float] = []
        deadline = time.monotonic() + seconds

        async def worker() -> None:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                await gateway.get_cluster_status(timeout=10)
                latencies.append((time.perf_counter() - started) * 1000)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return latencies


def _client(config: str, seconds: float, concurrency: int, results) -> None:
    results.put(asyncio.run(_load(config, seconds, concurrency)))


async def _ready(cluster: LocalCluster) -> None:
    async with gateway_client(cluster) as gateway:
        await wait_ready(gateway, cluster.agents)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.status_load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=2, help="load processes")
    parser.add_argument("--concurrency", type=int, default=64, help="calls in flight per load process")
    parser.add_argument("--quick", action="store_true", help="5 seconds")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    seconds = 5.0 if args.quick else args.seconds
    context = multiprocessing.get_context("spawn")
    with local_cluster() as cluster:
        asyncio.run(_ready(cluster))
        results = context.Queue()
        where = str(cluster.root / CLIENT_FILE)
        clients = [
            context.Process(target=_client, args=(where, seconds, args.concurrency, results))
            for _ in range(args.clients)
        ]
        for client in clients:
            client.start()
        latencies = [value for _ in clients for value in results.get(timeout=seconds + 120)]
        for client in clients:
            client.join()
    figures = {
        "requests_per_s": round(len(latencies) / seconds),
        "p50_ms": round(percentile(latencies, 50), 2),
        "p99_ms": round(percentile(latencies, 99), 2),
        "clients": args.clients,
        "concurrency": args.concurrency,
    }
    if args.json:
        print(json.dumps(figures))
        return 0
    print(f"# cached GetClusterStatus from {args.clients} load processes x {args.concurrency} in flight ({machine()})")
    print("| requests/s | p50 ms | p99 ms | seconds |")
    print("|---|---|---|---|")
    print(f"| {figures['requests_per_s']} | {figures['p50_ms']} | {figures['p99_ms']} | {seconds:g} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
