"""Runs job attempts as subprocesses: one work directory per attempt under
<data>/jobs/<job_id>/<attempt>/, its own process group, stdout/stderr captured to files,
result.json collected on exit, timeouts and cancellation kill the whole group. State is
kept in state.json so that a restarted agent re-adopts jobs still running, finishes
those that ended meanwhile, and reports the rest LOST: nothing is forgotten."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

import psutil

from ringrift.common.v1 import common_pb2
from ringrift_agent.adapters.outbox import Outbox

log = logging.getLogger("ringrift.agent.runner")

STARTING, RUNNING = common_pb2.JOB_STATE_STARTING, common_pb2.JOB_STATE_RUNNING
SUCCEEDED, FAILED = common_pb2.JOB_STATE_SUCCEEDED, common_pb2.JOB_STATE_FAILED
CANCELLED, LOST = common_pb2.JOB_STATE_CANCELLED, common_pb2.JOB_STATE_LOST
TERMINAL = (SUCCEEDED, FAILED, CANCELLED, LOST)
MAX_RESULT_BYTES = 1024 * 1024
POLL_SECONDS = 0.5


@dataclass
class Attempt:
    job_id: str
    attempt: int
    kind: str
    config_key: str
    work_dir: str
    argv: list[str]
    timeout_seconds: float
    epoch: int
    state: int = STARTING
    pid: int = 0
    pid_created: float = 0.0
    started_at: float = 0.0
    finished_at: float = 0.0
    exit_code: int = 0
    error: str = ""
    result_json: str = ""
    cancel_requested: bool = False
    monitor: asyncio.Task | None = field(default=None, repr=False, compare=False)

    @property
    def key(self) -> tuple[str, int]:
        return (self.job_id, self.attempt)

    def persisted(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "monitor"}


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None


def _read_result(work_dir: Path) -> str:
    path = work_dir / "result.json"
    try:
        if path.stat().st_size > MAX_RESULT_BYTES:
            return json.dumps({"error": f"result.json larger than {MAX_RESULT_BYTES} bytes was not collected"})
        text = path.read_text()
        json.loads(text)
        return text
    except FileNotFoundError:
        return ""
    except ValueError:
        return json.dumps({"error": "result.json is not valid JSON"})


class JobRunner:
    def __init__(
        self, data_dir: Path, node_id: str, outbox: Outbox, kill_grace_seconds: float, base_env: dict[str, str]
    ) -> None:
        self.data_dir = data_dir
        self._base_env = base_env
        self.jobs_dir = data_dir / "jobs"
        self.node_id = node_id
        self._outbox = outbox
        self._kill_grace = kill_grace_seconds
        self.attempts: dict[tuple[str, int], Attempt] = {}
        self._processes: dict[tuple[str, int], asyncio.subprocess.Process] = {}
        self._lock = asyncio.Lock()

    # -- queries ---------------------------------------------------------------
    def get(self, job_id: str, attempt: int) -> Attempt | None:
        if attempt:
            return self.attempts.get((job_id, attempt))
        found = [a for key, a in self.attempts.items() if key[0] == job_id]
        return max(found, key=lambda a: a.attempt) if found else None

    def running_by_kind(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for attempt in self.attempts.values():
            if attempt.state in (STARTING, RUNNING):
                counts[attempt.kind] = counts.get(attempt.kind, 0) + 1
        return counts

    # -- starting --------------------------------------------------------------
    async def run(self, attempt: Attempt, gpu_indices: list[int]) -> tuple[Attempt, bool]:
        """Start ``attempt`` unless that (job, attempt) is known already: idempotent."""
        async with self._lock:
            existing = self.attempts.get(attempt.key)
            if existing is not None:
                return existing, False
            self.attempts[attempt.key] = attempt
        work_dir = Path(attempt.work_dir)
        try:
            await asyncio.to_thread(work_dir.mkdir, parents=True, exist_ok=True)
            await self._spawn(attempt, work_dir, gpu_indices)
        except OSError as exc:
            await self._finish(attempt, FAILED, error=f"could not start the job: {exc.strerror or exc}")
            return attempt, True
        attempt.monitor = asyncio.create_task(self._watch_child(attempt), name=f"job-{attempt.job_id}")
        return attempt, True

    def _env(self, attempt: Attempt, gpu_indices: list[int]) -> dict[str, str]:
        env = dict(self._base_env)
        env.update(
            {
                "RINGRIFT_JOB_ID": attempt.job_id,
                "RINGRIFT_JOB_ATTEMPT": str(attempt.attempt),
                "RINGRIFT_JOB_CONFIG_KEY": attempt.config_key,
                "RINGRIFT_JOB_DATA_DIR": str(self.data_dir),
                "RINGRIFT_JOB_WORK_DIR": attempt.work_dir,
                "CUDA_VISIBLE_DEVICES": ",".join(str(i) for i in gpu_indices),
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env

    async def _spawn(self, attempt: Attempt, work_dir: Path, gpu_indices: list[int]) -> None:
        stdout = (work_dir / "stdout.log").open("ab")
        stderr = (work_dir / "stderr.log").open("ab")
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "ringrift_agent.wrapper", str(work_dir), "--", *attempt.argv,
                stdout=stdout, stderr=stderr, stdin=asyncio.subprocess.DEVNULL, cwd=work_dir,
                env=self._env(attempt, gpu_indices), start_new_session=True,
            )
        finally:
            stdout.close()
            stderr.close()
        attempt.pid = process.pid
        attempt.started_at = time.time()
        try:
            attempt.pid_created = psutil.Process(process.pid).create_time()
        except psutil.Error:
            attempt.pid_created = 0.0
        attempt.state = RUNNING
        self._processes[attempt.key] = process
        await self._persist(attempt)
        await self._report(attempt)

    # -- watching --------------------------------------------------------------
    async def _watch_child(self, attempt: Attempt) -> None:
        process = self._processes[attempt.key]
        remaining = attempt.timeout_seconds - (time.time() - attempt.started_at)
        try:
            await asyncio.wait_for(process.wait(), max(0.0, remaining))
        except TimeoutError:
            await self._kill(attempt)
            await process.wait()
            await self._finish(attempt, FAILED, error=f"timed out after {attempt.timeout_seconds:.0f}s")
            return
        await self._conclude(attempt)

    async def _watch_adopted(self, attempt: Attempt) -> None:
        deadline = attempt.started_at + attempt.timeout_seconds
        while self._alive(attempt):
            if time.time() > deadline:
                await self._kill(attempt)
                await self._finish(attempt, FAILED, error=f"timed out after {attempt.timeout_seconds:.0f}s")
                return
            await asyncio.sleep(POLL_SECONDS)
        await self._conclude(attempt)

    @staticmethod
    def _alive(attempt: Attempt) -> bool:
        try:
            process = psutil.Process(attempt.pid)
            return process.create_time() == attempt.pid_created and process.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    async def _conclude(self, attempt: Attempt) -> None:
        work_dir = Path(attempt.work_dir)
        ended = await asyncio.to_thread(_read_json, work_dir / "exit.json")
        if attempt.cancel_requested:
            await self._finish(attempt, CANCELLED, error="cancelled")
        elif ended is None:
            await self._finish(attempt, LOST, error="the job process ended without recording an exit code")
        elif ended["exit_code"] == 0:
            await self._finish(attempt, SUCCEEDED, exit_code=0, result_json=await asyncio.to_thread(_read_result, work_dir))
        else:
            await self._finish(attempt, FAILED, exit_code=ended["exit_code"], error=f"exit code {ended['exit_code']}")

    async def _kill(self, attempt: Attempt) -> None:
        """SIGTERM to the process group, SIGKILL after the grace period."""
        try:
            os.killpg(attempt.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + self._kill_grace
        while time.monotonic() < deadline and self._alive(attempt):
            await asyncio.sleep(0.05)
        try:
            os.killpg(attempt.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    async def cancel(self, job_id: str, attempt_number: int) -> Attempt | None:
        attempt = self.get(job_id, attempt_number)
        if attempt is None or attempt.state in TERMINAL:
            return attempt
        attempt.cancel_requested = True
        await self._kill(attempt)
        if attempt.monitor is not None:
            await asyncio.wait([attempt.monitor], timeout=self._kill_grace + 2)
        return attempt

    # -- finishing and reporting ---------------------------------------------------
    async def _finish(self, attempt: Attempt, state: int, exit_code: int = 0, error: str = "", result_json: str = "") -> None:
        self._processes.pop(attempt.key, None)
        attempt.state, attempt.exit_code, attempt.error, attempt.result_json = state, exit_code, error, result_json
        attempt.finished_at = time.time()
        await self._persist(attempt)
        await self._report(attempt)
        log.info("job %s attempt %d %s %s", attempt.job_id, attempt.attempt, common_pb2.JobState.Name(state), error)

    async def _persist(self, attempt: Attempt) -> None:
        await asyncio.to_thread(_write_json, Path(attempt.work_dir) / "state.json", attempt.persisted())

    async def _report(self, attempt: Attempt) -> None:
        await self._outbox.put(
            {
                "job_id": attempt.job_id,
                "attempt": attempt.attempt,
                "node_id": self.node_id,
                "state": attempt.state,
                "exit_code": attempt.exit_code,
                "error": attempt.error,
                "result_json": attempt.result_json,
            }
        )

    # -- restart -------------------------------------------------------------------
    async def recover(self) -> dict[str, int]:
        """Re-adopt attempts still running, finish those that ended while the agent was
        down, report the rest LOST."""
        states = await asyncio.to_thread(lambda: [_read_json(p) for p in self.jobs_dir.glob("*/*/state.json")])
        outcome = {"adopted": 0, "finished": 0, "lost": 0}
        for data in filter(None, states):
            data.pop("cancel_requested", None)
            attempt = Attempt(**{k: v for k, v in data.items() if k in Attempt.__dataclass_fields__})
            self.attempts[attempt.key] = attempt
            if attempt.state in TERMINAL:
                continue
            if attempt.state == RUNNING and self._alive(attempt):
                attempt.monitor = asyncio.create_task(self._watch_adopted(attempt), name=f"job-{attempt.job_id}")
                outcome["adopted"] += 1
            elif (Path(attempt.work_dir) / "exit.json").exists():
                await self._conclude(attempt)
                outcome["finished"] += 1
            else:
                await self._finish(attempt, LOST, error="the agent restarted and the job process is gone")
                outcome["lost"] += 1
        return outcome

    async def stop(self, kill_jobs: bool = False) -> None:
        """Stop watching; the jobs keep running and are re-adopted after a restart, unless
        ``kill_jobs`` (a local cluster going down for good) stops them first."""
        if kill_jobs:
            running = [a for a in self.attempts.values() if a.state not in TERMINAL and a.pid]
            await asyncio.gather(*(self.cancel(a.job_id, a.attempt) for a in running), return_exceptions=True)
        monitors = [a.monitor for a in self.attempts.values() if a.monitor is not None and not a.monitor.done()]
        for monitor in monitors:
            monitor.cancel()
        await asyncio.gather(*monitors, return_exceptions=True)
