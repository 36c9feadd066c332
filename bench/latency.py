"""How long from SubmitJob to SUCCEEDED for one trivial job?

Starts a real local cluster as `ringrift up` does (etcd, StateService, the six managers,
two gateways, three agents, mutual TLS everywhere) with the pipeline loops off, so the
agents are idle. Then submits jobs through the gateway one at a time and times each from
the SubmitJob call to its JOB_SUCCEEDED event on the gateway's WatchEvents stream
(opened before the first submission). Two kinds, in the same run on the same cluster:
``true`` (the job is true(1): what remains is the job path and the agent's wrapper) and
``echo`` (a Python job: its interpreter's start adds to it).

    .venv/bin/python -m bench.latency [--jobs 100] [--cohost] [--quick] [--json]

``--cohost`` runs StateService and the managers in one process (`ringrift up --cohost`).

When Ray is installed (the ``bench`` extra), the same run starts a Ray head on this
machine afterwards (`ray start --head`, with its dashboard) and times, one at a time, a Ray task
that returns at once (``ray.get(f.remote())``, 200 after 20 warm-ups; 50 in --quick) and
Ray Jobs' ``submit_job("true")`` until its status reads SUCCEEDED (asked every 10 ms;
10 jobs, 5 in --quick).

``--json`` prints one object: jobs, p50_ms, p90_ms, p99_ms, max_ms (of ``true``),
echo_p50_ms, echo_p99_ms, safety_round_s, and ray_task_p50_ms, ray_task_p99_ms,
ray_jobs_p50_ms, ray_jobs_p99_ms (null without Ray).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time

from bench import _ray
from bench._cluster import gateway_client, local_cluster, wait_ready
from bench._common import machine, percentile
from ringrift.common.v1 import common_pb2 as C
from ringrift.orchestrator.v1 import orchestrator_pb2 as O
from ringrift_cli.local_cluster import LocalCluster
from ringrift_settings import GatewaySettings


async def measure(cluster: LocalCluster, jobs: int) -> dict[str, list[float]]:
    async with gateway_client(cluster) as gateway:
        await wait_ready(gateway, cluster.agents)
        watch = gateway.watch_events(
            O.WatchEventsRequest(filter=C.EventFilter(types=[C.EVENT_TYPE_JOB_SUCCEEDED, C.EVENT_TYPE_JOB_FAILED]))
        )
        specs = {"true": C.JobSpec(kind="true"), "echo": C.JobSpec(kind="echo", params={"message": "hi"})}
        latencies: dict[str, list[float]] = {kind: [] for kind in specs}
        for kind, spec in specs.items():
            for index in range(jobs + 3):  # three warm-up jobs first
                started = time.perf_counter()
                submitted = await gateway.submit_job(spec=spec, timeout=10)
                while True:
                    event = (await asyncio.wait_for(anext(watch), 30)).event
                    if event.subject == submitted.job.job_id:
                        break
                if event.type != C.EVENT_TYPE_JOB_SUCCEEDED:
                    raise SystemExit(f"job {submitted.job.job_id} failed: {event.attributes.get('error', '')}")
                if index >= 3:
                    latencies[kind].append((time.perf_counter() - started) * 1000)
        await watch.aclose()
        return latencies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.latency", description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="30 jobs")
    parser.add_argument("--cohost", action="store_true", help="StateService and the managers in one process")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    jobs = 30 if args.quick else args.jobs
    with local_cluster(cohost=args.cohost) as cluster:
        latencies = asyncio.run(measure(cluster, jobs))
    true, echo = latencies["true"], latencies["echo"]
    ray_tasks: list[float] = []
    ray_jobs: list[float] = []
    if _ray.installed():
        with _ray.ray_head(dashboard=True) as head:
            ray_tasks = _ray.task_round_trips(head, 50 if args.quick else 200)
            ray_jobs = _ray.job_latencies(head, 5 if args.quick else 10)
    figures = {
        "jobs": jobs,
        "p50_ms": round(statistics.median(true), 1),
        "p90_ms": round(percentile(true, 90), 1),
        "p99_ms": round(percentile(true, 99), 1),
        "max_ms": round(max(true), 1),
        "echo_p50_ms": round(statistics.median(echo), 1),
        "echo_p99_ms": round(percentile(echo, 99), 1),
        "safety_round_s": GatewaySettings().dispatch_interval_seconds,
        "cohost": args.cohost,
        "ray_task_p50_ms": round(statistics.median(ray_tasks), 2) if ray_tasks else None,
        "ray_task_p99_ms": round(percentile(ray_tasks, 99), 2) if ray_tasks else None,
        "ray_jobs_p50_ms": round(statistics.median(ray_jobs), 1) if ray_jobs else None,
        "ray_jobs_p99_ms": round(percentile(ray_jobs, 99), 1) if ray_jobs else None,
    }
    if args.json:
        print(json.dumps(figures))
        return 0
    mode = "StateService and the managers co-hosted" if args.cohost else "each service its own process"
    print(f"# submit -> SUCCEEDED, one job at a time, idle 3-agent local cluster, {mode} ({machine()})")
    print(f"# dispatch safety round {figures['safety_round_s']:g} s")
    print("| kind | jobs | p50 ms | p90 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|---|")
    rows = dict(latencies)
    if ray_tasks:
        rows["Ray task round trip"] = ray_tasks
        rows["Ray Jobs submit -> SUCCEEDED"] = ray_jobs
    for kind, values in rows.items():
        print(
            f"| {kind} | {len(values)} | {statistics.median(values):.1f} | {percentile(values, 90):.1f} "
            f"| {percentile(values, 99):.1f} | {max(values):.1f} |"
        )
    if not ray_tasks:
        print("\nRay is not installed (pip install -e '.[bench]'): no Ray figures in this run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
