"""Runs one job process and records how it ended, so that an agent that restarts while
the job runs can still learn its exit code (a re-adopted process is not its child).

    python -S .../ringrift_agent/wrapper.py WORK_DIR [cpu=SECONDS] [nofile=COUNT] -- ARGV...
    python -S .../ringrift_agent/wrapper.py --standby   # the job comes on stdin (standby())

The wrapper leads the job's process group. It catches SIGTERM and SIGINT before the job
starts and forwards them to it, so it always outlives its job and reaps it (a job is
never left a zombie for whatever init the machine has): a signal that comes before the
job started means the job never starts. It records the exit code and the CPU seconds
(user + system) the job used: the job's rusage as the wrapper reaps it, which includes
every descendant the job itself waited for (a process the job left running past its own
exit is not counted). A program that cannot be started is exit code 127, as a shell
would say. exit.json is written atomically.

It is on every job's path, so it starts lean: the agent runs it by file path without the
site module; it imports only os, sys, time, _signal (the C module: `signal` imports enum,
functools and collections, ~7 ms a job) and, when the job has limits, resource; and it
starts the job with posix_spawn, not fork and exec (no copy of an interpreter per job).
The template's rlimits are set on the wrapper just before the spawn and the job inherits
them (the wrapper itself uses almost no CPU, and its files are open by then). The agent
keeps one wrapper started ahead (--standby), so a job does not wait for an interpreter to
start (~10 ms); it is handed its job as NUL-terminated fields (no module to load: `json`
would hold another ~1.2 MiB in every waiting wrapper), by its agent only.

The agent runs the native build of this wrapper (native/job_wrapper.c, the same command
line, input and exit.json) when the package was built with a C compiler; this file is
its fallback (`agent.job_wrapper`).
"""

from __future__ import annotations

import _signal as signal
import os
import sys
import time

NOT_STARTED = 127
FORWARDED = (signal.SIGTERM, signal.SIGINT)


class ExitRecord:
    """exit.json, written atomically at the end. Its files are opened first, before the
    job's rlimits are set on the wrapper (a limit on open files then cannot keep the
    wrapper from recording how the job ended); the job does not inherit them."""

    def __init__(self, work_dir: str) -> None:
        self._tmp = os.path.join(work_dir, "exit.json.tmp")
        self._final = os.path.join(work_dir, "exit.json")
        self._fd = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self._dir = os.open(work_dir, os.O_RDONLY | os.O_DIRECTORY)

    def write(self, code: int, cpu_seconds: float) -> None:
        # Integers and finite floats: their repr is JSON.
        text = f'{{"exit_code": {int(code)}, "finished_at": {time.time()!r}, "cpu_seconds": {float(cpu_seconds)!r}}}'
        try:
            os.write(self._fd, text.encode())
            os.fsync(self._fd)
        finally:
            os.close(self._fd)
        os.replace(self._tmp, self._final)
        try:
            os.fsync(self._dir)  # the new name durable too
        finally:
            os.close(self._dir)


def _limit(limits: dict[str, int]) -> None:
    """The template's rlimits, set here for the job to inherit (CPU seconds: SIGXCPU at
    the limit, SIGKILL a second later)."""
    if not limits:
        return
    import resource  # only jobs with limits pay for it

    if "cpu" in limits:
        resource.setrlimit(resource.RLIMIT_CPU, (limits["cpu"], limits["cpu"] + 1))
    if "nofile" in limits:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits["nofile"], limits["nofile"]))


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)


def standby() -> int:
    """Started ahead of a job, with the interpreter's start behind it: waits for one job
    on stdin (NUL-terminated fields, each led by its kind: W the work directory, L a limit
    name=value, A an argument, E an environment entry KEY=VALUE; the agent then closes the
    pipe), then takes the job's work directory, its logs as stdout and stderr, /dev/null
    as stdin, and runs it. End of input without a job (the agent stopped or went away):
    nothing to do. The native wrapper (native/job_wrapper.c) reads the same input."""
    data = _read_all(0)
    if not data:
        return 0
    work_dir = ""
    limits: dict[str, int] = {}
    argv: list[str] = []
    env: dict[str, str] = {}
    for field in data.split(b"\0")[:-1]:  # what follows the last NUL is no field
        kind, value = field[:1], os.fsdecode(field[1:])
        if kind == b"W":
            work_dir = value
        elif kind == b"A":
            argv.append(value)
        elif kind == b"E":
            key, _, entry = value.partition("=")
            env[key] = entry
        elif kind == b"L":
            name, _, number = value.partition("=")
            limits[name] = int(number)
    if not work_dir or not argv:
        os.write(2, b"wrapper.py: the standby input names no work directory or no program\n")
        return NOT_STARTED
    os.chdir(work_dir)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    for fd, name in ((1, "stdout.log"), (2, "stderr.log")):
        log = os.open(os.path.join(work_dir, name), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(log, fd)
        os.close(log)
    # The job's environment as the agent built it; posix_spawnp finds the program on the
    # standby's own PATH, the agent's, as the job's is.
    return run(work_dir, limits, argv, env)


def main() -> int:
    if sys.argv[1:] == ["--standby"]:
        return standby()
    work_dir = sys.argv[1]
    separator = sys.argv.index("--")
    limits = {name: int(value) for name, _, value in (a.partition("=") for a in sys.argv[2:separator])}
    return run(work_dir, limits, sys.argv[separator + 1 :], os.environ)


def run(work_dir: str, limits: dict[str, int], argv: list[str], env) -> int:
    record = ExitRecord(work_dir)
    child = 0
    received: list[int] = []

    def forward(signum, frame) -> None:
        received.append(signum)
        if child:
            try:
                os.kill(child, signum)
            except ProcessLookupError:
                pass

    for signum in FORWARDED:
        signal.signal(signum, forward)
    if received:  # stopped before the job started: it never does
        record.write(-received[0], 0.0)
        return 128 + received[0]
    try:
        _limit(limits)
    except (ValueError, OSError) as exc:
        os.write(2, f"cannot set the job's limits: {exc}\n".encode())
        record.write(NOT_STARTED, 0.0)
        return NOT_STARTED
    try:  # the forwarded signals back to their defaults in the job
        child = os.posix_spawnp(argv[0], argv, env, setsigdef=FORWARDED)
    except OSError as exc:
        os.write(2, f"cannot start {argv[0]}: {exc.strerror or exc}\n".encode())
        record.write(NOT_STARTED, 0.0)
        return NOT_STARTED
    if received:  # it came while the job was being started
        os.kill(child, received[0])
    _, status, usage = os.wait4(child, 0)  # retried after a forwarded signal (PEP 475)
    code = os.waitstatus_to_exitcode(status)  # negative: killed by that signal
    record.write(code, usage.ru_utime + usage.ru_stime)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    # Everything it writes is written with os.write and synced: the interpreter's own
    # teardown (~3 ms, on the job's path) has nothing to do.
    os._exit(main())
