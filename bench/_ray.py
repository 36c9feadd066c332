"""Ray beside RingRift in the benchmarks, when it is installed (the optional ``bench``
extra: ``pip install -e '.[bench]'``, which is ``ray[default]``: the dashboard and Ray
Jobs come with it).

``ray_head()`` starts a Ray head as a user would (``ray start --head``, its dashboard on
loopback, with its own temporary directory and ports), yields once it answers, and stops
every process it started, found by descent from the ``ray start --block`` process and by
the temporary directory in their command lines (some detach). ``ray stop`` is not used:
it stops every Ray process of the machine, not only this one's.

Ray's token authentication is off for what the benchmarks start (``RAY_AUTH_MODE=disabled``
for the head and the benchmark's own driver; both are on this machine): left to itself, a
local ``ray.init()`` writes a token to ~/.ray/auth_token, and a head started later reads it
while a driver need not, so the two disagree."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from ringrift_runtime.local.ports import free_port

MIB = 1024 * 1024
WORKER_PORTS = (10002, 19999)  # Ray's default range for its workers' ports
AUTH_MODE = "RAY_AUTH_MODE"
STOP_GRACE_SECONDS = 10.0


@contextmanager
def without_auth() -> Iterator[None]:
    """``RAY_AUTH_MODE=disabled`` in this process while Ray is used here (Ray reads it from
    the environment), as it was before afterwards."""
    before = os.environ.get(AUTH_MODE)
    os.environ[AUTH_MODE] = "disabled"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(AUTH_MODE, None)
        else:
            os.environ[AUTH_MODE] = before


def installed() -> bool:
    return importlib.util.find_spec("ray") is not None


@dataclass
class RayHead:
    address: str  # for ray.init(address=...)
    dashboard_url: str  # Ray Jobs' REST endpoint ("" without the dashboard)
    pid: int  # the `ray start --block` process
    temp_dir: str

    def processes(self) -> list[psutil.Process]:
        """Every live process of this head: the ``ray start`` process, its descendants,
        and the processes that name this head's temporary directory."""
        found: dict[int, psutil.Process] = {}
        try:
            root = psutil.Process(self.pid)
            for process in [root, *root.children(recursive=True)]:
                found[process.pid] = process
        except psutil.Error:
            pass
        for process in psutil.process_iter(["cmdline"]):
            if process.pid not in found and any(self.temp_dir in part for part in process.info["cmdline"] or ()):
                found[process.pid] = process
        return [process for process in found.values() if _running(process)]

    def resident_mib(self) -> tuple[float, int]:
        """(summed RSS in MiB, number of processes)."""
        total, count = 0.0, 0
        for process in self.processes():
            try:
                total += process.memory_info().rss / MIB
                count += 1
            except psutil.Error:
                continue
        return round(total, 1), count


def _running(process: psutil.Process) -> bool:
    """Alive and not a zombie (an ended child its parent has not reaped yet)."""
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def stop_all(processes: list[psutil.Process], grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM, then SIGKILL what is still there after ``grace`` seconds."""
    for process in processes:
        try:
            process.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(processes, timeout=grace)
    for process in alive:
        try:
            process.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=grace)


@contextmanager
def ray_head(dashboard: bool = True, cpus: int = 2, timeout: float = 180.0) -> Iterator[RayHead]:
    """A Ray head on this machine (with the dashboard and Ray Jobs, or without), stopped at the
    end. Raises RuntimeError when it does not answer within ``timeout`` seconds."""
    # Ray's unix sockets live under the temporary directory: keep its path short.
    temp_dir = tempfile.mkdtemp(prefix="rb-", dir="/tmp")
    port, dashboard_port, client_port, agent_port = (_free_port_for_ray() for _ in range(4))
    log = Path(temp_dir) / "start.log"
    command = [
        sys.executable,
        "-m",
        "ray.scripts.scripts",
        "start",
        "--head",
        "--block",
        "--node-ip-address=127.0.0.1",
        f"--port={port}",
        f"--num-cpus={cpus}",
        f"--temp-dir={temp_dir}",
        "--disable-usage-stats",
        f"--include-dashboard={'true' if dashboard else 'false'}",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={dashboard_port}",
        f"--ray-client-server-port={client_port}",
        f"--dashboard-agent-listen-port={agent_port}",
        f"--min-worker-port={WORKER_PORTS[0]}",
        f"--max-worker-port={WORKER_PORTS[1]}",
    ]
    with log.open("wb") as output:
        environment = {**os.environ, AUTH_MODE: "disabled"}
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env=environment, start_new_session=True
        )
    head = RayHead(
        f"127.0.0.1:{port}", f"http://127.0.0.1:{dashboard_port}" if dashboard else "", process.pid, temp_dir
    )
    try:
        _wait_until_up(head, process, log, timeout)
        yield head
    finally:
        stop_all(head.processes())
        process.wait(STOP_GRACE_SECONDS)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _free_port_for_ray() -> int:
    """A free port outside the range Ray keeps for its workers (it refuses to start when
    one of its other ports lies in it)."""
    while True:
        port = free_port()
        if not WORKER_PORTS[0] <= port <= WORKER_PORTS[1]:
            return port


def _wait_until_up(head: RayHead, process: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"ray start exited with {process.returncode}: {log.read_text()[-2000:]}")
        if _up(head):
            return
        time.sleep(0.5)
    raise RuntimeError(f"the Ray head did not answer within {timeout:.0f}s: {log.read_text()[-2000:]}")


def _up(head: RayHead) -> bool:
    names = set()
    for process in head.processes():
        try:
            names.add(process.name())
        except psutil.Error:
            continue
    if not {"raylet", "gcs_server"} <= names:
        return False
    if not head.dashboard_url:
        return True
    try:
        with urllib.request.urlopen(f"{head.dashboard_url}/api/version", timeout=2) as reply:
            return reply.status == 200
    except urllib.error.HTTPError:
        return True  # it answers; it asks for the token Ray keeps in ~/.ray once it made one
    except OSError:
        return False


def task_round_trips(head: RayHead, count: int, warm_up: int = 20) -> list[float]:
    """Milliseconds of ``ray.get(f.remote())`` for a task that returns at once, one at a
    time, from a driver connected to ``head``."""
    import ray  # type: ignore[import-not-found]

    with without_auth():
        ray.init(address=head.address, log_to_driver=False)
        try:

            @ray.remote
            def nothing() -> int:
                return 0

            ray.get([nothing.remote() for _ in range(warm_up)])
            latencies = []
            for _ in range(count):
                started = time.perf_counter()
                ray.get(nothing.remote())
                latencies.append((time.perf_counter() - started) * 1000)
            return latencies
        finally:
            ray.shutdown()


def job_latencies(head: RayHead, count: int, poll_seconds: float = 0.01) -> list[float]:
    """Milliseconds from Ray Jobs' submit_job of ``true`` until its status reads SUCCEEDED
    (Ray Jobs has no push for a status: it is asked every ``poll_seconds``)."""
    from ray.job_submission import JobSubmissionClient  # type: ignore[import-not-found]

    latencies = []
    with without_auth():
        client = JobSubmissionClient(head.dashboard_url)
        for _ in range(count):
            started = time.perf_counter()
            job = client.submit_job(entrypoint="true")
            while not _succeeded(client, job):
                time.sleep(poll_seconds)
            latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def _succeeded(client: Any, job: str) -> bool:
    """Whether the Ray job has SUCCEEDED (False while it runs); RuntimeError when it
    ended otherwise, with the end of its log."""
    from ray.job_submission import JobStatus  # type: ignore[import-not-found]

    status = client.get_job_status(job)
    if status in (JobStatus.FAILED, JobStatus.STOPPED):
        raise RuntimeError(f"Ray job {job} ended {status}: {client.get_job_logs(job)[-500:]}")
    return bool(status == JobStatus.SUCCEEDED)


def jobs_rate(head: RayHead, count: int, poll_seconds: float = 0.05) -> float:
    """Ray Jobs of ``true`` per second: ``count`` submitted at once with submit_job, timed
    from the first submission until the last reads SUCCEEDED (Ray Jobs has no push for a
    status: each is asked every ``poll_seconds``)."""
    from ray.job_submission import JobSubmissionClient  # type: ignore[import-not-found]

    with without_auth():
        client = JobSubmissionClient(head.dashboard_url)
        started = time.perf_counter()
        waiting = [client.submit_job(entrypoint="true") for _ in range(count)]
        while waiting := [job for job in waiting if not _succeeded(client, job)]:
            time.sleep(poll_seconds)
        return count / (time.perf_counter() - started)
