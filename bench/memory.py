"""How much memory does the control plane of `ringrift up` hold?

Starts a real local cluster as `ringrift up` does (etcd, StateService, six managers, two
gateways, three agents; mutual TLS) with the pipeline loops off, and sums the resident
set size (RSS) of its processes: once idle (after a settling pause) and once after
N `true` jobs submitted through the gateway in batches of 1,000 have all succeeded. The
job processes themselves are gone by then; only the cluster's own processes count.
Measured twice, one cluster after the other: each service in its own process (`ringrift
up`) and StateService with the managers co-hosted in one (`ringrift up --cohost`).
Beside RSS, the sum of proportional set sizes (PSS: a page shared by k processes, such as
the text of grpcio's library, counts 1/k in each): the memory the machine really gives.

    .venv/bin/python -m bench.memory [--jobs 10000] [--mode both|separate|cohost] [--quick] [--json]

When Ray is installed (the ``bench`` extra), the same run then starts an idle Ray head on
this machine twice, as `ray start --head` does with ``ray[default]`` (its dashboard, Ray Jobs'
server and their agents) and without its dashboard (``--include-dashboard=false``), and
sums the RSS of every process each started after the same settling pause.

``--json`` prints one object: per mode (``separate``, ``cohost``) rss_mib (idle),
rss_after_jobs_mib, pss_mib, pss_after_jobs_mib, jobs, processes and per-process figures;
at the top level the figures of the leanest mode measured and the goal, and
ray_head_rss_mib, ray_head_processes, ray_head_minimal_rss_mib,
ray_head_minimal_processes (null without Ray).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

import psutil

from bench import _ray
from bench._cluster import cluster_pids, gateway_client, local_cluster, wait_ready
from bench._common import machine
from ringrift.common.v1 import common_pb2 as C
from ringrift.orchestrator.v1 import orchestrator_pb2 as O
from ringrift_cli.local_cluster import LocalCluster

MIB = 1024 * 1024
SETTLE_SECONDS = 10.0
GOAL_MIB = 500.0


def resident(cluster: LocalCluster) -> dict[str, tuple[float, float]]:
    """MiB resident (RSS, PSS) per process of the cluster (etcd and every service
    process), each with its children: an agent's job wrapper started ahead counts as the
    agent's (no job runs when this is measured)."""
    found = {}
    for name, pid in cluster_pids(cluster).items():
        rss = pss = 0.0
        try:
            process = psutil.Process(pid) if pid else None
            family = [process, *process.children(recursive=True)] if process else []
        except psutil.Error:
            family = []
        for member in family:
            try:
                memory = member.memory_full_info()
            except psutil.Error:
                continue
            rss, pss = rss + memory.rss / MIB, pss + memory.pss / MIB
        found[name] = (rss, pss)
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


def measure(jobs: int, cohost: bool, settle: float) -> dict:
    """One cluster's figures, idle and after ``jobs`` true jobs."""
    with local_cluster(cohost=cohost) as cluster:
        time.sleep(settle)
        idle = resident(cluster)
        seconds = asyncio.run(run_jobs(cluster, jobs))
        time.sleep(settle)
        after = resident(cluster)

    def total(figures: dict[str, tuple[float, float]], index: int) -> float:
        return round(sum(f[index] for f in figures.values()), 1)

    return {
        "rss_mib": total(idle, 0),
        "rss_after_jobs_mib": total(after, 0),
        "pss_mib": total(idle, 1),
        "pss_after_jobs_mib": total(after, 1),
        "jobs": jobs,
        "jobs_seconds": round(seconds, 1),
        "processes": len(idle),
        "per_process_mib": {name: [round(idle[name][0], 1), round(after.get(name, (0.0, 0.0))[0], 1)] for name in idle},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.memory", description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--mode", choices=["both", "separate", "cohost"], default="both")
    parser.add_argument("--quick", action="store_true", help="500 jobs and a 5 s pause per mode")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    jobs = 500 if args.quick else args.jobs
    settle = 5.0 if args.quick else SETTLE_SECONDS
    modes = ["separate", "cohost"] if args.mode == "both" else [args.mode]
    measured = {mode: measure(jobs, mode == "cohost", settle) for mode in modes}
    leanest = min(measured, key=lambda mode: measured[mode]["rss_after_jobs_mib"])
    ray: dict[str, tuple[float, int]] = {}
    if _ray.installed():
        for name, dashboard in (("ray_head", True), ("ray_head_minimal", False)):
            with _ray.ray_head(dashboard=dashboard) as head:
                time.sleep(settle)
                ray[name] = head.resident_mib()
    figures = {
        **{key: measured[leanest][key] for key in ("rss_mib", "rss_after_jobs_mib", "pss_mib", "pss_after_jobs_mib")},
        "mode": leanest,
        "goal_mib": GOAL_MIB,
        "jobs": jobs,
        **measured,
        **{
            f"{name}_{figure}": ray[name][index] if name in ray else None
            for name in ("ray_head", "ray_head_minimal")
            for index, figure in enumerate(("rss_mib", "processes"))
        },
    }
    if args.json:
        print(json.dumps(figures))
        return 0
    print(f"# memory of the local cluster, idle and after {jobs} true jobs ({machine()})")
    for mode, one in measured.items():
        print(f"\n## {mode}: {one['processes']} processes; the jobs took {one['jobs_seconds']} s")
        print("| process | idle MiB | after jobs MiB |")
        print("|---|---|---|")
        for name, (idle, after) in one["per_process_mib"].items():
            print(f"| {name} | {idle:.1f} | {after:.1f} |")
        print(f"| **total RSS** | **{one['rss_mib']}** | **{one['rss_after_jobs_mib']}** |")
        print(f"| total PSS | {one['pss_mib']} | {one['pss_after_jobs_mib']} |")
    print(f"\nleanest: {leanest}, {figures['rss_after_jobs_mib']} MiB RSS after the jobs (goal ≤ {GOAL_MIB:.0f})")
    if ray:
        for name, label in (("ray_head", "with its dashboard"), ("ray_head_minimal", "without its dashboard")):
            mib, count = ray[name]
            print(f"Ray's idle head {label}: {mib} MiB RSS in {count} processes")
    else:
        print("Ray is not installed (pip install -e '.[bench]'): no Ray figures in this run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
