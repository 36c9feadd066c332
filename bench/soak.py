"""Does the control plane stay the same size when it runs for a long time? A simulated
week of job churn at accelerated time: real StateService (SQLite), NodeSelector and
JobService processes on a real etcd (auto-compacted, its window scaled to the day),
simulated agents that re-put their NodeInfo every second (real ones every few), and this
process as the leader: it submits and dispatches trivial jobs at a steady rate and runs
the JobCleanup round. Every retention window is scaled to the simulated day: terminal
jobs move to history after half a day and history is deleted half a day later, events
are kept one day. After each simulated day it records StateService's database size
(with its WAL), etcd's database size, each process's resident memory, the jobs in the
live table and the events kept. Past the first day (the first window) every figure
should stay flat.

    .venv/bin/python -m bench.soak [--quick] [--day-seconds 60] [--days 7] [--rate 100] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil
from prometheus_client.parser import text_string_to_metric_families

from bench._common import machine, table
from bench._security import BenchSecurity
from bench.jobs_throughput import SimulatedCluster, simulated_cluster
from ringrift.common.v1 import common_pb2
from ringrift.jobs.v1 import jobs_pb2
from ringrift.state.v1 import state_pb2

DAY = 86400.0
# A figure past the first window counts as flat when it grows at most 15 %, or by less
# than the noise floor of its kind (SQLite's file grows by pages, a Python heap by a few
# MB). etcd's bytes in use get no such allowance.
FLAT = 1.15
SLACK = {"db_bytes": 2**20, "rss_mb": 5.0}
SPEC = common_pb2.JobSpec(kind="noop", requirements=common_pb2.ResourceRequirements(min_free_ram_mb=1))


def etcd_window(scale: float) -> tuple[str, ...]:
    """etcd's compaction on the soak's clock. Deployments keep the last 10,000 revisions
    (COMPACTION_ARGS): at 20 agents re-putting every 3 s that is under half an hour of
    history, and etcd compacts by revision every five minutes of real time, so a soak at
    accelerated time would never reach the window (a quick soak makes ~700 revisions) and
    its history would only grow. The soak keeps the same kind of window on its own clock:
    the last tenth of a simulated day, compacted as often (etcd's periodic mode)."""
    seconds = max(1, round(DAY * scale / 10))
    return ("--auto-compaction-mode=periodic", f"--auto-compaction-retention={seconds}s")


def _etcd_db_bytes(metrics_port: int) -> tuple[int, int]:
    """(bytes of etcd's database in use, bytes of its file): the file grows in steps and
    only a defragmentation shrinks it; pages freed by compaction are reused."""
    wanted = ("etcd_mvcc_db_total_size_in_use_in_bytes", "etcd_mvcc_db_total_size_in_bytes")
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as reply:
        families = text_string_to_metric_families(reply.read().decode())
        found = {f.name: int(f.samples[0].value) for f in families if f.name in wanted and f.samples}
    return found.get("etcd_mvcc_db_total_size_in_use_in_bytes", 0), found.get("etcd_mvcc_db_total_size_in_bytes", 0)


def _db_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.glob("s.db*"))


async def _sample(cluster: SimulatedCluster, day: int) -> dict:
    stats = await cluster.state.GetClusterStats(state_pb2.GetClusterStatsRequest(), timeout=10)
    oldest = await cluster.state.ListEvents(state_pb2.ListEventsRequest(limit=1), timeout=10)
    first = oldest.events[0].sequence if oldest.events else stats.last_event_sequence + 1
    processes = {name: p.process.pid for name, p in cluster.processes.items() if p.process is not None}
    processes["etcd"] = cluster.etcd.process.pid
    etcd_in_use, etcd_file = await asyncio.to_thread(_etcd_db_bytes, cluster.etcd.metrics_port)
    return {
        "day": day,
        "db_bytes": await asyncio.to_thread(_db_bytes, cluster.root),
        "etcd_bytes": etcd_in_use,
        "etcd_file_bytes": etcd_file,
        "rss_mb": {name: round(psutil.Process(pid).memory_info().rss / 2**20, 1) for name, pid in processes.items()},
        "live_jobs": sum(c.count for c in stats.jobs),
        "events_kept": stats.last_event_sequence - first + 1,
        "last_event": stats.last_event_sequence,
    }


async def _churn(cluster: SimulatedCluster, rate: float, stop: asyncio.Event) -> None:
    """``rate`` jobs a second, submitted in one batch each tick and dispatched at once."""
    tick = 0.25
    owed = 0.0
    while not stop.is_set():
        owed += rate * tick
        count, owed = int(owed), owed - int(owed)
        if count:
            batch = [jobs_pb2.SubmitJobRequest(spec=SPEC)] * count
            await cluster.jobs.SubmitJobs(jobs_pb2.SubmitJobsRequest(jobs=batch), timeout=60)
        request = jobs_pb2.DispatchPendingJobsRequest(limit=1000, epoch=cluster.epoch)
        await cluster.jobs.DispatchPendingJobs(request, timeout=60)
        await asyncio.sleep(tick)


async def _cleanup(cluster: SimulatedCluster, every: float, stop: asyncio.Event) -> None:
    """The leader's JobCleanup round, by JobService's (scaled) windows."""
    while not stop.is_set():
        await asyncio.sleep(every)
        request = jobs_pb2.CleanupOldCompletedJobsRequest(epoch=cluster.epoch)
        await cluster.jobs.CleanupOldCompletedJobs(request, timeout=60)


async def soak(day_seconds: float, days: int, rate: float, agents: int) -> dict:
    scale = day_seconds / DAY
    env_for = {
        "state": {
            "RINGRIFT_STATE__EVENT_RETENTION_DAYS": f"{1.0 * scale:.9f}",
            "RINGRIFT_STATE__EVENT_COMPACTION_SECONDS": str(day_seconds / 10),
        },
        "jobs": {
            "RINGRIFT_JOBS__RETENTION_SECONDS": str(day_seconds / 2),
            "RINGRIFT_JOBS__HISTORY_RETENTION_DAYS": f"{0.5 * scale:.9f}",
        },
    }
    samples = []
    with tempfile.TemporaryDirectory(prefix="ringrift-bench-pki-") as pki_root:
        async with simulated_cluster(
            agents, BenchSecurity(Path(pki_root), True), env_for, refresh_seconds=3, etcd_compaction=etcd_window(scale)
        ) as cluster:
            stop = asyncio.Event()
            workers = [
                asyncio.create_task(_churn(cluster, rate, stop)),
                asyncio.create_task(_cleanup(cluster, day_seconds / 10, stop)),
            ]
            started = time.monotonic()
            try:
                for day in range(1, days + 1):
                    await asyncio.sleep(max(0.0, started + day * day_seconds - time.monotonic()))
                    for worker in workers:
                        if worker.done():
                            worker.result()  # a failed worker fails the run
                    samples.append(await _sample(cluster, day))
            finally:
                stop.set()
                await asyncio.gather(*workers, return_exceptions=True)
    return {"day_seconds": day_seconds, "days": days, "jobs_per_second": rate, "agents": agents, "samples": samples}


def growth(samples: list[dict]) -> dict[str, float]:
    """How much each figure grew from the end of day 2 (one window past the first) to the
    end of the run: last / day 2."""
    second, last = samples[1], samples[-1]
    figures = {
        "db_bytes": (second["db_bytes"], last["db_bytes"]),
        "etcd_bytes": (second["etcd_bytes"], last["etcd_bytes"]),
    }
    figures["live_jobs"] = (second["live_jobs"], last["live_jobs"])
    figures["events_kept"] = (second["events_kept"], last["events_kept"])
    for name in last["rss_mb"]:
        figures[f"rss_mb.{name}"] = (second["rss_mb"][name], last["rss_mb"][name])
    return {name: round(after / before, 3) if before else float("inf") for name, (before, after) in figures.items()}


def _figure(sample: dict, name: str) -> float:
    if name.startswith("rss_mb."):
        return sample["rss_mb"][name.split(".", 1)[1]]
    return sample[name]


def flat(name: str, samples: list[dict]) -> bool:
    before, after = _figure(samples[1], name), _figure(samples[-1], name)
    slack = SLACK.get(name.split(".", 1)[0], 0)
    return after <= before * FLAT or after - before <= slack


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a 15-second day at 40 jobs/s (about two minutes)")
    parser.add_argument("--day-seconds", type=float, default=60.0)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--rate", type=float, default=100.0, help="jobs per second")
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.days < 3:
        parser.error("--days: at least 3 (the first window, then two days to compare)")
    day_seconds, rate = (15.0, 40.0) if args.quick else (args.day_seconds, args.rate)
    result = asyncio.run(soak(day_seconds, args.days, rate, args.agents))
    result["growth_after_first_window"] = grown = growth(result["samples"])
    result["flat"] = all(flat(name, result["samples"]) for name in grown)
    if args.json:
        print(json.dumps(result))
        return
    rows = []
    for sample in result["samples"]:
        rss = ", ".join(f"{name} {mb:.0f}" for name, mb in sorted(sample["rss_mb"].items()))
        rows.append(
            (
                f"day {sample['day']}: database / etcd in use MB, live jobs, events kept",
                f"{sample['db_bytes'] / 2**20:.1f} / {sample['etcd_bytes'] / 2**20:.2f} "
                f"(file {sample['etcd_file_bytes'] / 2**20:.2f}), "
                f"{sample['live_jobs']}, {sample['events_kept']} (of {sample['last_event']})",
                f"RSS MB: {rss}",
            )
        )
    worst = max(grown, key=lambda name: grown[name])
    rows.append(
        (
            "largest growth, day 2 → last day",
            f"{worst} ×{grown[worst]:.2f}",
            f"flat: ≤ ×{FLAT} (database within 1 MiB, RSS within 5 MB) (goal)",
        )
    )
    title = (
        f"Soak: {args.days} simulated days of {day_seconds:.0f} s, {rate:.0f} jobs/s, {args.agents} agents"
        f" — {machine()}"
    )
    print(table(title, rows))
    grew = [name for name in grown if not flat(name, result["samples"])]
    print(f"\nflat after the first window: {'yes' if result['flat'] else 'no: ' + ', '.join(grew)}")


if __name__ == "__main__":
    main()
