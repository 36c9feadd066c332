"""Does dispatch keep its rate behind a large backlog over many nodes?

Real StateService (SQLite), NodeSelector and JobService processes with mutual TLS, and
simulated agents (as in bench.jobs_throughput: gRPC servers in this process that report
each job SUCCEEDED at once), each with a few job slots so that the backlog stays
pending; this process is the leader and keeps calling DispatchPendingJobs.

Two figures on one cluster, measured alike: 2,000 jobs are submitted (not timed) and
the rate at which they are dispatched and succeed is timed; then the whole backlog is
submitted (not timed) and the rate at which its first jobs are dispatched and succeed. A dispatch
round reads per-node job counts (not every job on a node) and the head of the backlog
through an index in dispatch order, so the second rate should not depend on the
backlog's size. Goal: within 20 % of the first.

    .venv/bin/python -m bench.backlog [--backlog 100000] [--agents 1000] [--slots 2] [--measure 10000]
        [--quick] [--json]

``--quick``: a backlog of 20,000 over 200 agents. ``--json`` prints one object:
backlog, agents, slots, jobs_per_s (the 2,000-job run), backlog_jobs_per_s, ratio,
submit_s (how long the backlog took to submit).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

from bench._common import machine, table
from bench._security import BenchSecurity
from bench.jobs_throughput import one_run, simulated_cluster, succeeded
from ringrift.common.v1 import common_pb2
from ringrift.jobs.v1 import jobs_pb2

SPEC = common_pb2.JobSpec(kind="noop", requirements=common_pb2.ResourceRequirements(min_free_ram_mb=1))
BATCH = 1000  # SubmitJobs' limit
SMALL = 2000


async def submit(cluster, count: int) -> None:
    for offset in range(0, count, BATCH):
        batch = [jobs_pb2.SubmitJobRequest(spec=SPEC)] * min(BATCH, count - offset)
        await cluster.jobs.SubmitJobs(jobs_pb2.SubmitJobsRequest(jobs=batch), timeout=120)


async def drain(cluster, count: int) -> float:
    """Dispatch until ``count`` more jobs succeeded; jobs per second."""
    before = await succeeded(cluster.state)
    started = time.perf_counter()
    checked = 0.0
    while True:
        request = jobs_pb2.DispatchPendingJobsRequest(limit=1000, epoch=cluster.epoch)
        await cluster.jobs.DispatchPendingJobs(request, timeout=60)
        if time.perf_counter() - checked > 0.25:
            checked = time.perf_counter()
            done = await succeeded(cluster.state) - before
            if done >= count:
                return done / (checked - started)
        await asyncio.sleep(0.01)


async def measure(backlog: int, agents: int, slots: int, count: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="ringrift-bench-pki-") as pki_root:
        security = BenchSecurity(Path(pki_root), True)
        async with simulated_cluster(agents, security, job_slots=slots) as cluster:
            await one_run(cluster.jobs, cluster.state, 500, cluster.epoch)  # warm-up
            await submit(cluster, SMALL)
            small = await drain(cluster, SMALL)
            started = time.perf_counter()
            await submit(cluster, backlog)
            submit_s = time.perf_counter() - started
            large = await drain(cluster, min(count, backlog))
    return {
        "backlog": backlog,
        "agents": agents,
        "slots": slots,
        "jobs_per_s": round(small, 1),
        "backlog_jobs_per_s": round(large, 1),
        "ratio": round(large / small, 3),
        "submit_s": round(submit_s, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backlog", type=int, default=100_000)
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--slots", type=int, default=2, help="job slots per agent")
    parser.add_argument("--measure", type=int, default=10_000, help="jobs of the backlog timed")
    parser.add_argument("--quick", action="store_true", help="a backlog of 20,000 over 200 agents")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    backlog, agents, count = (20_000, 200, 4000) if args.quick else (args.backlog, args.agents, args.measure)
    figures = asyncio.run(measure(backlog, agents, args.slots, count))
    if args.json:
        print(json.dumps(figures))
        return
    rows = [
        ("jobs per second, a backlog of 2,000", f"{figures['jobs_per_s']:.1f}", ""),
        (
            f"jobs per second, the first {min(count, backlog):,} of a {backlog:,}-job backlog",
            f"{figures['backlog_jobs_per_s']:.1f}",
            f"submitted in {figures['submit_s']:.1f} s (not timed)",
        ),
        ("backlog / empty", f"{figures['ratio']:.2f}", "goal ≥ 0.80"),
    ]
    print(table(f"Dispatch behind a backlog, {agents} simulated agents × {args.slots} slots — {machine()}", rows))


if __name__ == "__main__":
    main()
