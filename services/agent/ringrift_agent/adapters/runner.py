"""Runs job attempts as subprocesses: one work directory per attempt under
<data>/jobs/<job_id>/<attempt>/, its own process group, stdout/stderr captured to files,
result.json collected on exit, timeouts and cancellation kill the whole group. State is
kept in state.json so that a restarted agent re-adopts jobs still running, finishes
those that ended meanwhile, and reports the rest LOST: nothing is forgotten. What an
attempt is and how it ended is the domain's (ringrift_agent.domain.attempts).

Memory stays flat however many jobs ran: the runner holds the live attempts and the
most recent ended ones; an older ended attempt is read from its state.json when asked
for, and only its end time and key are held until its work directory goes (after the
retention window, or sooner when more ended attempts than the count cap are kept)."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import shutil
import signal
import sys
import time
from collections import OrderedDict
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import psutil

from ringrift_agent.adapters.children import PIPE, Child
from ringrift_agent.adapters.files import check_reported_games
from ringrift_agent.adapters.outbox import Outbox
from ringrift_agent.domain.attempts import LOST_ON_RESTART, Attempt, Ending, Recovery, ending, recovery, timed_out
from ringrift_contracts.jobs import JobState
from ringrift_runtime.durable import write_atomic
from ringrift_runtime.errors import DependencyUnavailable

log = logging.getLogger("ringrift.agent.runner")

MAX_RESULT_BYTES = 1024 * 1024
WRAPPER = Path(__file__).resolve().parents[1] / "wrapper.py"
# The same wrapper as a native program (native/job_wrapper.c), built with the package when a
# C compiler was there (hatch_build.py): no interpreter's start on a job's path (~10 ms of
# CPU a job) and ~1 MiB for the wrapper kept waiting instead of ~8.
NATIVE_WRAPPER = Path(__file__).resolve().parents[1] / "bin" / "ringrift-job-wrapper"


def wrapper_command(kind: str = "native") -> list[str]:
    """How to start the job wrapper: the native one (``kind`` "native") when it was built,
    otherwise wrapper.py by file path without the site module."""
    if kind == "native" and os.access(NATIVE_WRAPPER, os.X_OK):
        return [str(NATIVE_WRAPPER)]
    if kind == "native":
        log.warning("the native job wrapper was not built (%s); jobs run under wrapper.py", NATIVE_WRAPPER)
    return [sys.executable, "-S", str(WRAPPER)]


def standby_input(work_dir: Path, argv: list[str], env: dict[str, str], limits: dict[str, int]) -> bytes | None:
    """A standby wrapper's job: NUL-terminated fields, each led by its kind (W the work
    directory, L a limit name=value, A an argument, E an environment entry KEY=VALUE),
    read by both wrappers. None when a value holds a NUL (it would end its field early):
    the job then starts its own wrapper, which refuses it as the operating system does."""
    fields = [
        "W" + str(work_dir),
        *(f"L{name}={value}" for name, value in limits.items()),
        *("A" + arg for arg in argv),
        *(f"E{key}={value}" for key, value in env.items()),
    ]
    if any("\0" in field for field in fields):
        return None
    return b"".join(os.fsencode(field) + b"\0" for field in fields)


POLL_SECONDS = 0.5
MEMORY_POLL_SECONDS = 0.25


def _write_json(path: Path, data: dict) -> None:
    write_atomic(path, json.dumps(data))


def _remove_attempt_dir(job_dir: Path, attempt: str) -> None:
    shutil.rmtree(job_dir / attempt, ignore_errors=True)
    try:
        job_dir.rmdir()  # the job's folder goes with its last attempt here
    except OSError:
        pass


def _rlimits(attempt: Attempt) -> dict[str, int]:
    """The rlimits the wrapper sets on the job (by name, those the template has)."""
    limits = {"cpu": attempt.cpu_limit_seconds, "nofile": attempt.open_files}
    return {name: int(value) for name, value in limits.items() if value}


def _rlimit_args(attempt: Attempt) -> list[str]:
    """The wrapper's rlimit arguments (it sets them on the job before exec)."""
    return [f"{name}={value}" for name, value in _rlimits(attempt).items()]


def _group_rss_mb(leader: int) -> float:
    """Resident memory of a process and all its descendants (MB); 0 when it is gone."""
    try:
        root = psutil.Process(leader)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.Error:
            pass
    return total / 2**20


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None


def _scan_attempts(jobs_dir: Path) -> tuple[list[Attempt], list[tuple[tuple[str, int], float]]]:
    """Every attempt directory under ``jobs_dir`` (``<job>/<attempt>``): the attempts whose
    state.json reads, and the key and newest modification time of every other one (an
    agent that died between creating the directory and writing its state, or a record
    that cannot be read), so that those too are deleted once their retention is over."""
    attempts: list[Attempt] = []
    unrecorded: list[tuple[tuple[str, int], float]] = []
    if not jobs_dir.is_dir():
        return attempts, unrecorded
    for job_dir in jobs_dir.iterdir():
        if not job_dir.is_dir():
            continue
        for attempt_dir in job_dir.iterdir():
            if not attempt_dir.is_dir() or not attempt_dir.name.isdigit():
                continue
            record = _read_json(attempt_dir / "state.json")
            if isinstance(record, dict):
                try:
                    attempts.append(Attempt.from_persisted(record))
                    continue
                except (KeyError, TypeError, ValueError):
                    pass
            times = [attempt_dir.stat().st_mtime]
            times += [entry.stat(follow_symlinks=False).st_mtime for entry in os.scandir(attempt_dir)]
            unrecorded.append(((job_dir.name, int(attempt_dir.name)), max(times)))
            log.warning("%s has no readable state.json: deleted after the retention window", attempt_dir)
    return attempts, unrecorded


def _unrecorded_groups(dirs: set[str]) -> set[int]:
    """The process groups of every process (this user's, not the agent's own group) whose
    working directory is one of ``dirs``: a job wrapper works in its attempt's directory
    and leads the job's group, so an attempt started by an agent that died before its
    state.json was written is found by where it runs."""
    own = os.getpgrp()
    groups: set[int] = set()
    for process in psutil.process_iter(["cwd"]):
        cwd = process.info.get("cwd")
        if cwd not in dirs:
            continue
        try:
            group = os.getpgid(process.pid)
        except ProcessLookupError:
            continue
        if group != own:
            groups.add(group)
    return groups


def _leader_alive(group: int) -> bool:
    try:
        return psutil.Process(group).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _kill_groups(groups: set[int], grace_seconds: float) -> None:
    """SIGTERM to each group, and SIGKILL to whatever of it is left once every leader is
    gone or the grace period is over."""
    for group in groups:
        try:
            os.killpg(group, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace_seconds
    while any(_leader_alive(g) for g in groups) and time.monotonic() < deadline:
        time.sleep(0.05)
    for group in groups:
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _exit_record(work_dir: Path) -> tuple[int | None, float]:
    """The exit code the wrapper recorded in exit.json (None when there is none) and the
    CPU seconds it measured (0 when unknown)."""
    recorded = _read_json(work_dir / "exit.json")
    if recorded is None:
        return None, 0.0
    try:
        code: int | None = int(recorded["exit_code"])
    except (KeyError, TypeError, ValueError):
        code = None
    try:
        cpu = float(recorded.get("cpu_seconds", 0.0))
    except (TypeError, ValueError):
        cpu = 0.0
    return code, cpu if math.isfinite(cpu) and cpu > 0 else 0.0


LOGS = ("stdout.log", "stderr.log")


def cap_log(path: Path, max_bytes: int) -> int:
    """Keep the newest half of a log that grew past ``max_bytes``, behind a line saying
    how much was dropped; the bytes dropped (0: within its cap). The job keeps writing
    (its descriptor appends), so only what it writes during the cut can be lost."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return 0
    if size <= max_bytes:
        return 0
    keep = max_bytes // 2
    with path.open("r+b") as log_file:
        log_file.seek(size - keep)
        tail = log_file.read(keep)
        log_file.seek(0)
        log_file.truncate()
        log_file.write(f"[ringrift: {size - keep} earlier bytes of this log were dropped]\n".encode())
        log_file.write(tail)
    return size - keep


def _cap_each_log(work_dir: Path, max_bytes: int) -> list[int]:
    """Cap each of an attempt's logs (LOGS); the bytes dropped from each."""
    return [cap_log(work_dir / name, max_bytes) for name in LOGS]


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


def _read_end(work_dir: Path, data_dir: Path) -> tuple[int | None, float, str, str]:
    """What an ended job left, read at once (one hop off the event loop, on every job's
    path): its exit code and CPU seconds, and after exit code 0 its result and what is
    wrong with the games it says it wrote ("" when nothing)."""
    code, cpu = _exit_record(work_dir)
    if code != 0:
        return code, cpu, "", ""
    result = _read_result(work_dir)
    return code, cpu, result, check_reported_games(data_dir, result)


class JobRunner:
    def __init__(
        self,
        data_dir: Path,
        node_id: str,
        outbox: Outbox,
        kill_grace_seconds: float,
        base_env: dict[str, str],
        log_max_bytes: int = 64 * 1024 * 1024,
        running_report_delay: float = 0.0,
        standby_wrapper: bool = False,
        ended_in_memory: int = 256,
        max_ended: int = 10_000,
        job_wrapper: str = "native",
    ) -> None:
        self.data_dir = data_dir
        self._wrapper = wrapper_command(job_wrapper)
        self._running_delay = running_report_delay
        self._keep_standby = standby_wrapper
        self._standby: Child | None = None  # a wrapper waiting for a job
        self._standby_starting: asyncio.Task[None] | None = None
        self._jobs_dir_made = False  # the standby wrapper's working directory exists
        self._base_env = base_env
        self.jobs_dir = data_dir / "jobs"
        self.node_id = node_id
        self._outbox = outbox
        self._kill_grace = kill_grace_seconds
        self._log_max_bytes = log_max_bytes
        # The live attempts and the most recent ended ones (at most ended_in_memory of them).
        self.attempts: dict[tuple[str, int], Attempt] = {}
        self._recent: OrderedDict[tuple[str, int], None] = OrderedDict()  # ended, in memory, oldest first
        self._ended_in_memory = ended_in_memory
        # Every ended attempt whose work directory is kept, with its end time, in the order
        # they ended: what retention deletes, and which attempts are on disk only.
        self._ended: OrderedDict[tuple[str, int], float] = OrderedDict()
        self._max_ended = max_ended
        self._trimming: asyncio.Task[None] | None = None
        self._processes: dict[tuple[str, int], Child] = {}
        self._live: set[tuple[str, int]] = set()  # the attempts not ended: job slots count them
        self._monitors: dict[tuple[str, int], asyncio.Task[None]] = {}
        self._lock = asyncio.Lock()
        self.fenced_reason = ""  # set while this node's lease has lapsed: nothing runs
        self.job_slots = 0  # at most this many attempts run at once (0: no limit)
        self._stopping: set[asyncio.Task[None]] = set()

    # -- queries ---------------------------------------------------------------
    async def get(self, job_id: str, attempt: int) -> Attempt | None:
        """The attempt (0: the job's latest on this node): from memory, else from its
        state.json (an ended attempt the runner no longer holds); None when unknown."""
        if not attempt:
            known = [key[1] for keys in (self.attempts, self._ended) for key in keys if key[0] == job_id]
            attempt = max(known, default=0)
            if not attempt:
                return None
        found = self.attempts.get((job_id, attempt))
        if found is not None or (job_id, attempt) not in self._ended:
            return found  # a new attempt (RunJob's usual case) costs no disk read
        record = await asyncio.to_thread(_read_json, self.jobs_dir / job_id / str(attempt) / "state.json")
        return Attempt.from_persisted(record) if record else None

    def running_by_kind(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for attempt in self.attempts.values():
            if attempt.live:
                counts[attempt.kind] = counts.get(attempt.kind, 0) + 1
        return counts

    # -- starting --------------------------------------------------------------
    async def run(self, attempt: Attempt, gpu_indices: list[int]) -> tuple[Attempt, bool]:
        """Start ``attempt`` unless that (job, attempt) is known already: idempotent."""
        async with self._lock:
            existing = await self.get(*attempt.key)  # an ended attempt too, long after
            if existing is not None:
                return existing, False
            if self.fenced_reason:
                raise DependencyUnavailable(f"{self.node_id} runs nothing until it is registered again")
            if self.job_slots and len(self._live) >= self.job_slots:
                raise DependencyUnavailable(f"all {self.job_slots} job slots of {self.node_id} are busy")
            self.attempts[attempt.key] = attempt
            self._live.add(attempt.key)
        work_dir = Path(attempt.work_dir)
        try:
            await asyncio.to_thread(work_dir.mkdir, parents=True, exist_ok=True)
            await self._spawn(attempt, work_dir, gpu_indices)
        except OSError as exc:
            await self._finish(
                attempt, Ending(JobState.FAILED, error=f"could not start the job: {exc.strerror or exc}")
            )
            return attempt, True
        self._watch(attempt, self._watch_child(attempt))
        if self.fenced_reason:  # the lease lapsed while it was being spawned
            self.fence(self.fenced_reason)
        return attempt, True

    # -- fencing ---------------------------------------------------------------------
    def fence(self, reason: str) -> int:
        """This node's lease lapsed, so the leader may already run its jobs elsewhere:
        SIGKILL every running attempt's process group at once (no grace: the window is
        the lease's last second) and start nothing until unfence(). Each ends LOST with
        ``reason``, reported when JobService can be reached. How many were killed."""
        self.fenced_reason = reason
        killed = 0
        for attempt in self.attempts.values():
            group = attempt.process_group()
            if not attempt.live or attempt.fenced or group is None:
                continue
            attempt.fenced = reason
            try:
                os.killpg(group, signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
        if killed:
            log.warning("killed %d running job(s): %s", killed, reason)
        return killed

    def unfence(self) -> None:
        self.fenced_reason = ""

    def supersede(self, job_id: str, attempt_number: int) -> None:
        """The job moved on without this attempt (JobService said so): stop it, in the
        background (the caller is the event delivery, which must not wait for a kill)."""
        attempt = self.attempts.get((job_id, attempt_number))
        if attempt is None or not attempt.live or attempt.superseded:
            return
        attempt.superseded = True
        log.warning("job %s attempt %d was superseded; stopping it", job_id, attempt_number)
        self._background(self._kill(attempt), f"supersede-{job_id}")

    def _watch(self, attempt: Attempt, watcher) -> None:
        self._monitors[attempt.key] = asyncio.create_task(watcher, name=f"job-{attempt.job_id}")
        if attempt.memory_mb:
            self._background(self._watch_memory(attempt), f"memory-{attempt.job_id}")

    async def _watch_memory(self, attempt: Attempt) -> None:
        """Kill the attempt's process group once its resident memory passes the template's
        limit; it ends FAILED saying so (the agent and the other jobs live on)."""
        limit = attempt.memory_mb
        while attempt.live and not attempt.limit_exceeded:
            await asyncio.sleep(MEMORY_POLL_SECONDS)
            group = attempt.process_group()
            if group is None:
                continue
            resident = await asyncio.to_thread(_group_rss_mb, group)
            if resident > limit and attempt.live:
                attempt.limit_exceeded = f"memory limit of {limit} MB exceeded ({resident:.0f} MB resident)"
                log.warning("job %s attempt %d: %s", attempt.job_id, attempt.attempt, attempt.limit_exceeded)
                try:
                    os.killpg(group, signal.SIGKILL)
                except ProcessLookupError:
                    pass

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
        process = await self._hand_to_standby(attempt, work_dir, gpu_indices)
        if process is None:
            process = await self._spawn_wrapper(attempt, work_dir, gpu_indices)
        attempt.pid = process.pid
        attempt.started_at = time.time()
        try:
            attempt.pid_created = psutil.Process(process.pid).create_time()
        except psutil.Error:
            attempt.pid_created = 0.0
        attempt.state = JobState.RUNNING
        self._processes[attempt.key] = process
        await self._persist(attempt)
        await self._report_running(attempt)

    async def _spawn_wrapper(self, attempt: Attempt, work_dir: Path, gpu_indices: list[int]) -> Child:
        stdout = (work_dir / "stdout.log").open("ab")
        stderr = (work_dir / "stderr.log").open("ab")
        try:
            return Child.spawn(
                [*self._wrapper, str(work_dir), *_rlimit_args(attempt), "--", *attempt.argv],
                stdout=stdout,
                stderr=stderr,
                cwd=work_dir,
                env=self._env(attempt, gpu_indices),
                start_new_session=True,
            )
        finally:
            stdout.close()
            stderr.close()

    # -- the standby wrapper -----------------------------------------------------------
    async def _hand_to_standby(self, attempt: Attempt, work_dir: Path, gpu_indices: list[int]) -> Child | None:
        """The job to the wrapper started ahead (its interpreter's start is behind it), and
        the next one started in the background; None when there is none ready (the job
        then starts its own wrapper)."""
        standby, self._standby = self._standby, None
        if self._keep_standby:
            self._start_standby_soon()
        if standby is None or standby.returncode is not None:
            return None
        job = standby_input(work_dir, attempt.argv, self._env(attempt, gpu_indices), _rlimits(attempt))
        if job is None:
            standby.close_input()  # end of input without a job: it exits
            return None
        try:
            await standby.send_input(job)
        except (BrokenPipeError, ConnectionResetError):  # it died meanwhile
            return None
        return standby

    def _start_standby_soon(self) -> None:
        if self._standby_starting is None or self._standby_starting.done():
            self._standby_starting = asyncio.create_task(self._start_standby(), name="standby-wrapper")

    async def _start_standby(self) -> None:
        if self._standby is not None and self._standby.returncode is None:
            return
        try:
            if not self._jobs_dir_made:  # once: a thread hop per job otherwise
                await asyncio.to_thread(self.jobs_dir.mkdir, parents=True, exist_ok=True)
                self._jobs_dir_made = True
            self._standby = Child.spawn(
                [*self._wrapper, "--standby"],
                stdin=PIPE,
                cwd=self.jobs_dir,
                env=self._base_env,
                start_new_session=True,  # it leads the job's process group
            )
        except OSError as exc:
            self._jobs_dir_made = False  # made again next time, in case it went
            log.warning("could not start a standby job wrapper (%s); jobs start their own", exc)

    def prepare(self) -> None:
        """Start the standby wrapper (when it is kept) before the first job comes."""
        if self._keep_standby:
            self._start_standby_soon()

    async def _stop_standby(self) -> None:
        if self._standby_starting is not None:
            await asyncio.gather(self._standby_starting, return_exceptions=True)
        standby, self._standby = self._standby, None
        if standby is None or standby.returncode is not None:
            return
        standby.close_input()  # end of input: it exits without a job
        try:
            await asyncio.wait_for(standby.wait(), 5)
        except TimeoutError:
            standby.kill()
            await standby.wait()

    # -- watching --------------------------------------------------------------
    async def _watch_child(self, attempt: Attempt) -> None:
        process = self._processes[attempt.key]
        try:
            await asyncio.wait_for(process.wait(), max(0.0, attempt.deadline() - time.time()))
        except TimeoutError:
            await self._kill(attempt)
            await process.wait()
            await self._finish(attempt, timed_out(attempt))
            return
        await self._conclude(attempt)

    async def _watch_adopted(self, attempt: Attempt) -> None:
        while self._alive(attempt):
            if time.time() > attempt.deadline():
                await self._kill(attempt)
                await self._finish(attempt, timed_out(attempt))
                return
            await asyncio.sleep(POLL_SECONDS)
        await self._conclude(attempt)

    @staticmethod
    def _alive(attempt: Attempt) -> bool:
        group = attempt.process_group()
        if group is None:
            return False
        try:
            process = psutil.Process(group)
            return process.create_time() == attempt.pid_created and process.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    async def _conclude(self, attempt: Attempt) -> None:
        work_dir = Path(attempt.work_dir)

        def read_end_and_cap_logs() -> tuple[tuple[int | None, float, str, str], list[int]]:
            return _read_end(work_dir, self.data_dir), _cap_each_log(work_dir, self._log_max_bytes)

        (code, attempt.cpu_seconds, result, wrong), dropped = await asyncio.to_thread(read_end_and_cap_logs)
        end = ending(attempt, code)
        if not end.collect_result:
            result = ""
        if end.state is JobState.SUCCEEDED and wrong:  # a count the job reports is checked against what it wrote
            end = Ending(JobState.FAILED, error=wrong)
        await self._finish(attempt, end, result, dropped)

    async def _kill(self, attempt: Attempt) -> None:
        """SIGTERM to the attempt's own process group, SIGKILL after the grace period
        (never the agent's own group: an attempt not spawned yet has none)."""
        group = attempt.process_group()
        if group is None:
            return
        try:
            os.killpg(group, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + self._kill_grace
        while time.monotonic() < deadline and self._alive(attempt):  # noqa: ASYNC110 - no event tells a group's end
            await asyncio.sleep(0.05)
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass

    async def cancel(self, job_id: str, attempt_number: int) -> Attempt | None:
        attempt = await self.get(job_id, attempt_number)
        if attempt is None or attempt.ended:
            return attempt
        attempt.cancel_requested = True
        await self._kill(attempt)
        monitor = self._monitors.get(attempt.key)
        if monitor is not None:
            await asyncio.wait([monitor], timeout=self._kill_grace + 2)
        return attempt

    # -- finishing and reporting ---------------------------------------------------
    async def _finish(
        self, attempt: Attempt, end: Ending, result_json: str = "", logs_dropped: list[int] | None = None
    ) -> None:
        """``logs_dropped``: what capping its logs dropped, when the caller capped them
        already (in the same thread hop as it read the end)."""
        self._processes.pop(attempt.key, None)
        if logs_dropped is None:
            await self._cap_logs(attempt)
        else:
            self._log_dropped(attempt, logs_dropped)
        attempt.state, attempt.exit_code, attempt.error = end.state, end.exit_code, end.error
        self._live.discard(attempt.key)
        attempt.result_json = result_json
        attempt.finished_at = time.time()
        # The report is durable first: an agent that dies before state.json says how the
        # attempt ended finds its exit record after the restart and reports it again
        # (JobService ignores the repeat); the other way round the report would be lost.
        await self._report(attempt)
        await self._persist(attempt)
        log.info("job %s attempt %d %s %s", attempt.job_id, attempt.attempt, end.state.name, end.error)
        self._monitors.pop(attempt.key, None)
        self._remember_ended(attempt)

    def _remember_ended(self, attempt: Attempt) -> None:
        """An attempt ended: held among the recent ones (the oldest of those let go from
        memory, still on disk), its end time and key kept for retention (last: the
        retention order is the order of ending)."""
        self._ended.pop(attempt.key, None)
        self._ended[attempt.key] = attempt.finished_at
        self._recent[attempt.key] = None
        while len(self._recent) > self._ended_in_memory:
            key, _ = self._recent.popitem(last=False)
            self.attempts.pop(key, None)
        if len(self._ended) > self._max_ended and (self._trimming is None or self._trimming.done()):
            self._trimming = asyncio.create_task(self._trim(), name="trim-ended-attempts")
            self._stopping.add(self._trimming)
            self._trimming.add_done_callback(self._stopping.discard)

    async def _trim(self) -> None:
        """More ended attempts are kept than the count cap: the oldest go, however young."""
        while len(self._ended) > self._max_ended:
            key, _ = self._ended.popitem(last=False)
            await self._delete(key)

    async def _persist(self, attempt: Attempt) -> None:
        await asyncio.to_thread(_write_json, Path(attempt.work_dir) / "state.json", attempt.persisted())

    async def _report(self, attempt: Attempt) -> None:
        await self._outbox.put(attempt.report(self.node_id))

    async def _report_running(self, attempt: Attempt) -> None:
        """RUNNING is reported ``running_report_delay`` seconds after the start, unless the
        attempt ended by then: its end is then its only report (one report and one commit
        instead of two; STARTING -> SUCCEEDED is legal). Nothing is lost meanwhile:
        state.json says it runs, and an agent restarted before the report makes it from
        there (recover)."""
        if self._running_delay <= 0:
            await self._report(attempt)
            return

        async def later() -> None:
            await asyncio.sleep(self._running_delay)
            if attempt.state == JobState.RUNNING:
                await self._report(attempt)

        self._background(later(), f"running-{attempt.job_id}")

    def _background(self, work: Coroutine[Any, Any, None], name: str) -> None:
        """A task of this runner's that stop() cancels (kept referenced until it ends)."""
        task = asyncio.create_task(work, name=name)
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    # -- retention -------------------------------------------------------------------
    async def _cap_logs(self, attempt: Attempt) -> None:
        self._log_dropped(attempt, await asyncio.to_thread(_cap_each_log, Path(attempt.work_dir), self._log_max_bytes))

    @staticmethod
    def _log_dropped(attempt: Attempt, all_dropped: list[int]) -> None:
        for name, dropped in zip(LOGS, all_dropped, strict=True):
            if dropped:
                log.info("job %s attempt %d: dropped %d bytes of %s", attempt.job_id, attempt.attempt, dropped, name)

    async def cap_logs_forever(self, interval_seconds: float) -> None:
        """Cap the logs of running attempts every ``interval_seconds`` until cancelled."""
        while True:
            for attempt in [self.attempts[key] for key in self._live if key in self.attempts]:
                try:
                    await self._cap_logs(attempt)
                except OSError as exc:
                    log.warning("capping the logs of job %s failed: %s", attempt.job_id, exc)
            await asyncio.sleep(interval_seconds)

    async def prune(self, older_than_seconds: float, now: float | None = None) -> int:
        """Delete the work directories of attempts that ended more than
        ``older_than_seconds`` ago, and forget them (a job's folder goes with its last
        attempt); how many went. Live attempts are never touched. Reads only the
        attempts it deletes (they are kept in the order they ended)."""
        now = time.time() if now is None else now
        removed = 0
        while self._ended and now - next(iter(self._ended.values())) > older_than_seconds:
            key, _ = self._ended.popitem(last=False)
            await self._delete(key)
            removed += 1
        return removed

    async def _delete(self, key: tuple[str, int]) -> None:
        """An ended attempt's work directory, and its job's folder once empty."""
        job_id, number = key
        held = self.attempts.get(key)
        if held is not None and held.live:  # never a live one (a repeat of a pruned attempt runs again)
            return
        self.attempts.pop(key, None)
        self._recent.pop(key, None)
        self._monitors.pop(key, None)
        await asyncio.to_thread(_remove_attempt_dir, self.jobs_dir / job_id, str(number))

    async def prune_forever(self, retention_seconds: float, interval_seconds: float) -> None:
        """prune() every ``interval_seconds`` until cancelled; a failed round is logged."""
        while True:
            try:
                removed = await self.prune(retention_seconds)
                if removed:
                    log.info("removed the work directories of %d ended attempts", removed)
            except OSError as exc:
                log.warning("pruning work directories failed: %s", exc)
            await asyncio.sleep(interval_seconds)

    # -- restart -------------------------------------------------------------------
    async def recover(self) -> dict[str, int]:
        """Re-adopt attempts still running, finish those that ended while the agent was
        down, report the rest LOST; stop the processes of attempts that have no record
        (started just before the agent died, never acknowledged)."""
        attempts, unrecorded = await asyncio.to_thread(_scan_attempts, self.jobs_dir)
        outcome = {"adopted": 0, "finished": 0, "lost": 0, "killed": 0}
        if unrecorded:
            # The agent died between starting an attempt's process and writing its state:
            # RunJob never answered, so JobService runs the job again elsewhere. The
            # orphan would run beside it unwatched: its process group is stopped.
            dirs = {str((self.jobs_dir / job_id / str(number)).resolve()) for (job_id, number), _ in unrecorded}
            groups = await asyncio.to_thread(_unrecorded_groups, dirs)
            if groups:
                log.warning("stopping %d job process groups of attempts started without a record", len(groups))
                await asyncio.to_thread(_kill_groups, set(groups), self._kill_grace)
                outcome["killed"] = len(groups)
        ended = [(a.finished_at, a.key) for a in attempts if a.ended] + [(t, key) for key, t in unrecorded]
        for finished_at, key in sorted(ended):
            self._ended[key] = finished_at  # held on disk only
        for attempt in (a for a in attempts if not a.ended):
            self.attempts[attempt.key] = attempt
            self._live.add(attempt.key)
            exit_recorded = await asyncio.to_thread((Path(attempt.work_dir) / "exit.json").exists)
            action = recovery(attempt, self._alive(attempt), exit_recorded)
            if action is Recovery.ADOPT:
                self._watch(attempt, self._watch_adopted(attempt))
                await self._report(attempt)  # RUNNING again: JobService says if the job moved on meanwhile
                outcome["adopted"] += 1
            elif action is Recovery.CONCLUDE:
                await self._conclude(attempt)
                outcome["finished"] += 1
            elif action is Recovery.LOST:
                await self._finish(attempt, Ending(JobState.LOST, error=LOST_ON_RESTART))
                outcome["lost"] += 1
        return outcome

    async def stop(self, kill_jobs: bool = False) -> None:
        """Stop watching; the jobs keep running and are re-adopted after a restart, unless
        ``kill_jobs`` (a local cluster going down for good) stops them first."""
        if kill_jobs:
            running = [a for a in self.attempts.values() if not a.ended and a.process_group() is not None]
            await asyncio.gather(*(self.cancel(a.job_id, a.attempt) for a in running), return_exceptions=True)
        monitors = [m for m in [*self._monitors.values(), *self._stopping] if not m.done()]  # memory watches too
        for monitor in monitors:
            monitor.cancel()
        await asyncio.gather(*monitors, return_exceptions=True)
        for child in self._processes.values():
            child.close()  # its job keeps running: a restarted agent re-adopts it
        self._keep_standby = False
        await self._stop_standby()
