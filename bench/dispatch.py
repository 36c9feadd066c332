"""How many real jobs per second does a real cluster carry, and what CPU does each cost?

Starts a real local cluster as `ringrift up` does (etcd, StateService, the six managers,
two gateways, mutual TLS everywhere, pipeline loops off) with four real agent processes,
submits N `true` jobs through the gateway in batches (SubmitJobs, up to 1,000 a call) and
waits until every one has SUCCEEDED (the gateway's event stream). It reports jobs/s
from the first submission to the last SUCCEEDED, and CPU ms per job: the CPU time of
every process of the cluster over that span, the jobs' own processes included (an agent
reaps them, so they count in its children's times), split by process, which is where
the CPU went. Beside it, in the same run: the machine's bare spawn rate (a sequential
``subprocess.run(["/bin/true"])`` loop, as ``bench.jobs_throughput`` measures it) and,
when Ray is installed (``pip install -e '.[bench]'``), Ray tasks that each run
``/bin/true`` on a local Ray started for the run, and Ray Jobs of ``true`` (the like of a
RingRift job: a process of its own, a record, a status to ask for) submitted at once to
a Ray head started for the run (``--ray-jobs``, 50 by default, 20 with ``--quick``: each
starts a supervisor process of its own).

    .venv/bin/python -m bench.dispatch [--jobs 5000] [--agents 4] [--slots 8] [--quick] [--json]

``--json`` prints one object: jobs, agents, slots, jobs_per_s, cpu_ms_per_job,
spawn_per_s, ratio_to_spawn, ray_per_s (null without Ray), ratio_to_ray, ray_jobs_per_s,
ratio_to_ray_jobs, cpu_ms_by_process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time

import psutil

from bench import _ray
from bench._cluster import IDLE, cluster_pids, gateway_client, local_cluster, wait_ready
from bench._common import machine, table
from bench._ray import without_auth
from bench.jobs_throughput import spawn_rate
from ringrift.common.v1 import common_pb2 as C
from ringrift.orchestrator.v1 import orchestrator_pb2 as O
from ringrift_cli.local_cluster import LocalCluster

BATCH = 1000


def _processes(cluster: LocalCluster) -> dict[str, psutil.Process]:
    found = {}
    for name, pid in cluster_pids(cluster).items():
        if pid:
            try:
                found[name] = psutil.Process(pid)
            except psutil.Error:
                pass
    return found


def cpu_seconds(processes: dict[str, psutil.Process]) -> dict[str, float]:
    """CPU seconds so far of each process, and of its reaped children (the jobs' own
    processes under an agent) as ``<name> children``."""
    found = {}
    for name, process in processes.items():
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        found[name] = times.user + times.system
        found[f"{name} children"] = times.children_user + times.children_system
    return found


async def run_jobs(cluster: LocalCluster, jobs: int) -> tuple[float, dict[str, float]]:
    """Submit ``jobs`` true jobs in batches and wait for every SUCCEEDED: (seconds, CPU
    seconds per process over that span)."""
    processes = _processes(cluster)
    async with gateway_client(cluster) as gateway:
        await wait_ready(gateway, cluster.agents)
        done = gateway.watch_events(
            O.WatchEventsRequest(filter=C.EventFilter(types=[C.EVENT_TYPE_JOB_SUCCEEDED, C.EVENT_TYPE_JOB_FAILED]))
        )
        await asyncio.sleep(1)  # the watch is open before the first submission
        before = cpu_seconds(processes)
        started = time.perf_counter()

        async def submit() -> None:
            for start in range(0, jobs, BATCH):
                batch = [O.SubmitJobRequest(spec=C.JobSpec(kind="true")) for _ in range(min(BATCH, jobs - start))]
                await gateway.submit_jobs(O.SubmitJobsRequest(jobs=batch), timeout=120)

        submitting = asyncio.ensure_future(submit())
        finished = 0
        while finished < jobs:
            event = (await asyncio.wait_for(anext(done), 120)).event
            if event.type == C.EVENT_TYPE_JOB_FAILED:
                raise SystemExit(f"job {event.subject} failed: {event.attributes.get('error', '')}")
            finished += 1
        await submitting
        seconds = time.perf_counter() - started
        after = cpu_seconds(processes)
        await done.aclose()
    return seconds, {name: after[name] - before.get(name, 0.0) for name in after}


def ray_rate(tasks: int) -> float | None:
    """Ray tasks that each run /bin/true, on a local Ray started here (None without Ray)."""
    try:
        import ray  # type: ignore[import-not-found]
    except ImportError:
        return None
    with without_auth():  # a local ray.init() would otherwise write a token to ~/.ray
        ray.init(num_cpus=psutil.cpu_count() or 2, include_dashboard=False, log_to_driver=False)
        try:

            @ray.remote
            def true() -> int:
                return subprocess.run(["/bin/true"], check=True).returncode

            ray.get([true.remote() for _ in range(100)])  # warm the workers
            started = time.perf_counter()
            ray.get([true.remote() for _ in range(tasks)])
            return tasks / (time.perf_counter() - started)
        finally:
            ray.shutdown()


def ray_jobs_rate(count: int) -> float | None:
    """Ray Jobs of ``true`` per second on a Ray head started here (None without Ray)."""
    if count < 1 or not _ray.installed():
        return None
    with _ray.ray_head() as head:
        _ray.jobs_rate(head, 2)  # the first jobs start what Ray Jobs starts once
        return _ray.jobs_rate(head, count)


def _group(cluster: LocalCluster) -> dict[str, str]:
    """Each process's row in the breakdown: agents and gateways summed by kind."""
    rows = {"etcd": "etcd", "etcd children": "etcd"}
    for name, process in cluster.processes:
        row = f"{process.service}s" if process.service in ("agent", "gateway") else name
        rows[name] = row
        rows[f"{name} children"] = "jobs' own processes (wrapper and job)" if process.service == "agent" else row
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.dispatch", description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--agents", type=int, default=4)
    parser.add_argument("--slots", type=int, default=8, help="job slots per agent")
    parser.add_argument("--quick", action="store_true", help="1,000 jobs")
    parser.add_argument("--ray-jobs", type=int, default=50, help="Ray Jobs to time when Ray is installed (0: none)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.agents < 1 or args.slots < 1 or args.jobs < 1:
        parser.error("--jobs, --agents and --slots: at least 1")
    if args.ray_jobs < 0:
        parser.error("--ray-jobs: 0 or more")
    jobs = 1000 if args.quick else args.jobs
    env = {**IDLE, "RINGRIFT_AGENT__JOB_SLOTS": str(args.slots)}
    with local_cluster(env, agents=args.agents) as cluster:
        seconds, cpu = asyncio.run(run_jobs(cluster, jobs))
        rows = _group(cluster)
    spawn = spawn_rate()
    ray = ray_rate(jobs)
    ray_jobs = ray_jobs_rate(min(args.ray_jobs, 20) if args.quick else args.ray_jobs)
    by_group: dict[str, float] = {}
    for name, used in cpu.items():
        by_group[rows.get(name, name)] = by_group.get(rows.get(name, name), 0.0) + used
    jobs_per_s = jobs / seconds
    figures = {
        "jobs": jobs,
        "agents": args.agents,
        "slots": args.slots,
        "jobs_per_s": round(jobs_per_s, 1),
        "cpu_ms_per_job": round(1000 * sum(cpu.values()) / jobs, 2),
        "spawn_per_s": round(spawn, 1),
        "ratio_to_spawn": round(jobs_per_s / spawn, 3),
        "ray_per_s": round(ray, 1) if ray else None,
        "ratio_to_ray": round(jobs_per_s / ray, 3) if ray else None,
        "ray_jobs_per_s": round(ray_jobs, 2) if ray_jobs else None,
        "ratio_to_ray_jobs": round(jobs_per_s / ray_jobs, 1) if ray_jobs else None,
        "cpu_ms_by_process": {name: round(1000 * used / jobs, 2) for name, used in sorted(by_group.items())},
    }
    if args.json:
        print(json.dumps(figures))
        return 0
    ray_text = f"{ray:.1f}/s, ratio {figures['ratio_to_ray']} (goal ≥ 1.3)" if ray else "Ray not installed"
    ray_jobs_text = f"{ray_jobs:.2f}/s, ratio {figures['ratio_to_ray_jobs']}" if ray_jobs else "not measured"
    rows = [
        ("jobs/s, first submission → last SUCCEEDED", f"{jobs_per_s:.1f}", f"bare spawn {spawn:.1f}/s (goal ≥ 0.9×)"),
        ("ratio to the bare spawn rate", str(figures["ratio_to_spawn"]), "goal ≥ 0.9"),
        ("Ray tasks running /bin/true", ray_text, ""),
        ("Ray Jobs of true, submitted at once", ray_jobs_text, ""),
        ("CPU ms per job, every process of the cluster", str(figures["cpu_ms_per_job"]), ""),
        *((f"… of which {name}", str(per_job), "") for name, per_job in figures["cpu_ms_by_process"].items()),
    ]
    title = f"Real jobs through a real cluster: {jobs} `true` jobs, {args.agents} agents × {args.slots} slots"
    print(table(f"{title} — {machine()}", rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
