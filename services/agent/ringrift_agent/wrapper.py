"""Runs one job process and records how it ended, so that an agent that restarts while
the job runs can still learn its exit code (a re-adopted process is not its child).

    python -S .../ringrift_agent/wrapper.py WORK_DIR [cpu=SECONDS] [nofile=COUNT] -- ARGV...

The wrapper leads the job's process group. It catches SIGTERM and SIGINT before the job
starts and forwards them to it, so it always outlives its job and reaps it (a job is
never left a zombie for whatever init the machine has): a signal that comes before the
job started means the job never starts. It records the exit code and the CPU seconds
(user + system) the job used: the job's rusage as the wrapper reaps it, which includes
every descendant the job itself waited for (a process the job left running past its own
exit is not counted). A program that cannot be started is exit code 127, as a shell
would say. exit.json is written atomically.

It is on every job's path, so it starts lean: the agent runs it by file path without the
site module, and it imports only os, resource, signal, sys and time.
"""

from __future__ import annotations

import os
import resource
import signal
import sys
import time

NOT_STARTED = 127
FORWARDED = (signal.SIGTERM, signal.SIGINT)


def _record(work_dir: str, code: int, cpu_seconds: float) -> None:
    tmp = os.path.join(work_dir, "exit.json.tmp")
    # Integers and finite floats: their repr is JSON.
    text = f'{{"exit_code": {int(code)}, "finished_at": {time.time()!r}, "cpu_seconds": {float(cpu_seconds)!r}}}'
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, os.path.join(work_dir, "exit.json"))
    fd = os.open(work_dir, os.O_RDONLY | os.O_DIRECTORY)  # the new name durable too
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _exec(argv: list[str], limits: dict[str, int]) -> None:
    """In the forked child: the job's program, with the signals back to their defaults and
    its rlimits set (CPU seconds: SIGXCPU at the limit, SIGKILL a second later)."""
    for signum in FORWARDED:
        signal.signal(signum, signal.SIG_DFL)
    try:
        if "cpu" in limits:
            resource.setrlimit(resource.RLIMIT_CPU, (limits["cpu"], limits["cpu"] + 1))
        if "nofile" in limits:
            resource.setrlimit(resource.RLIMIT_NOFILE, (limits["nofile"], limits["nofile"]))
    except (ValueError, OSError) as exc:
        os.write(2, f"cannot set the job's limits: {exc}\n".encode())
        os._exit(NOT_STARTED)
    try:
        os.execvp(argv[0], argv)
    except OSError as exc:
        os.write(2, f"cannot start {argv[0]}: {exc.strerror or exc}\n".encode())
    os._exit(NOT_STARTED)


def main() -> int:
    work_dir = sys.argv[1]
    separator = sys.argv.index("--")
    limits = {name: int(value) for name, _, value in (a.partition("=") for a in sys.argv[2:separator])}
    argv = sys.argv[separator + 1 :]
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
        _record(work_dir, -received[0], 0.0)
        return 128 + received[0]
    child = os.fork()
    if child == 0:
        _exec(argv, limits)
    if received:  # it came while the job was being started
        os.kill(child, received[0])
    _, status, usage = os.wait4(child, 0)  # retried after a forwarded signal (PEP 475)
    code = os.waitstatus_to_exitcode(status)  # negative: killed by that signal
    _record(work_dir, code, usage.ru_utime + usage.ru_stime)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
