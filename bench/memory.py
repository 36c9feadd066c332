"""How much memory does the control plane of `ringrift up` hold?

Starts a real local cluster as `ringrift up` does (etcd, StateService, six managers, two
gateways, three agents; mutual TLS) with the pipeline loops off, and sums the resident
set size (RSS) of its processes: once idle (after a settling pause) and once after
N `true` jobs submitted through the gateway in batches of 1,000 have all succeeded. The
job processes themselves are gone by then; only the cluster's own processes count.

    .venv/bin/python -m bench.memory [--jobs 10000] [--quick] [--json]

``--json`` prints one object: rss_mib (idle), rss_after_jobs_mib, jobs, processes and
per-process figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

import psutil

from bench._cluster import cluster_pids, gateway_client, local_cluster, wait_ready
from bench._common import machine
from ringrift.common.v1 import common_pb2 as C
from ringrift.orchestrator.v1 import orchestrator_pb2 as O
from ringrift_cli.local_cluster import LocalCluster

MIB = 1024 * 1024
SETTLE_SECONDS = 10.0


def rss(cluster: LocalCluster) -> dict[str, float]:
    """MiB resident per process of the cluster (etcd and every service process), each
    with its children: an agent's job wrapper started ahead counts as the agent's (no job
    runs when this is measured)."""
    found = {}
    for name, pid in cluster_pids(cluster).items():
        found[name] = 0.0
        if not pid:
            continue
        try:
            process = psutil.Process(pid)
            family = [process, *process.children(recursive=True)]
        except psutil.Error:
            continue
        for member in family:
            try:
                found[name] += member.memory_info().rss / MIB
            except psutil.Error:
                pass
    return found


async def run_jobs(cluster: LocalCluster, jobs: int) -> float:
    """Submit ``jobs`` true jobs and wait until all succeeded; the seconds it took."""
    async with gateway_client(cluster) as gateway:
        await wait_ready(gateway, cluster.agents)
        started = time.monotonic()
        done = gateway.watch_events(
            O.WatchEventsRequest(filter=C.EventFilter(types=[C.EVENT_TYPE_JOB_SUCCEEDED, C.EVENT_TYPE_JOB_FAILED]))
        )
        for start in range(0, jobs, 1000):
            batch = [O.SubmitJobRequest(spec=C.JobSpec(kind="true")) for _ in range(min(1000, jobs - start))]
            await gateway.submit_jobs(O.SubmitJobsRequest(jobs=batch), timeout=60)
        finished = 0
        while finished < jobs:
            event = (await asyncio.wait_for(anext(done), 120)).event
            if event.type == C.EVENT_TYPE_JOB_FAILED:
                raise SystemExit(f"job {event.subject} failed: {event.attributes.get('error', '')}")
            finished += 1
        await done.aclose()
        return time.monotonic() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.memory", description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="2,000 jobs")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    jobs = 2000 if args.quick else args.jobs
    with local_cluster() as cluster:
        time.sleep(SETTLE_SECONDS)
        idle = rss(cluster)
        seconds = asyncio.run(run_jobs(cluster, jobs))
        time.sleep(SETTLE_SECONDS)
        after = rss(cluster)
    figures = {
        "rss_mib": round(sum(idle.values()), 1),
        "rss_after_jobs_mib": round(sum(after.values()), 1),
        "jobs": jobs,
        "jobs_seconds": round(seconds, 1),
        "processes": len(idle),
        "per_process_mib": {name: [round(idle[name], 1), round(after.get(name, 0.0), 1)] for name in idle},
    }
    if args.json:
        print(json.dumps(figures))
        return 0
    print(f"# RSS of the local cluster's {len(idle)} processes, idle and after {jobs} true jobs ({machine()})")
    print(f"# the jobs took {seconds:.1f} s ({jobs / seconds:.0f} jobs/s through the gateway)")
    print("| process | idle MiB | after jobs MiB |")
    print("|---|---|---|")
    for name in idle:
        print(f"| {name} | {idle[name]:.1f} | {after.get(name, 0.0):.1f} |")
    print(f"| **total** | **{figures['rss_mib']}** | **{figures['rss_after_jobs_mib']}** |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
