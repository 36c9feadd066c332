"""Runs one job process and records how it ended, so that an agent that restarts while
the job runs can still learn its exit code (a re-adopted process is not its child).

    python -S .../ringrift_agent/wrapper.py WORK_DIR -- ARGV...

The wrapper leads the job's process group; SIGTERM and SIGINT are forwarded to the job
and the exit code still recorded, with the CPU seconds (user + system) the job used: the
rusage of the job's process as its wrapper reaps it, which includes every descendant the
job itself waited for (a process the job left running past its own exit is not counted).
A program that cannot be started is recorded as exit code 127, as a shell would.
exit.json is written atomically.

It is on every job's path, so it starts lean: the agent runs it by file path without the
site module, and it imports only os, signal, sys and time (no subprocess, no json).
"""

from __future__ import annotations

import os
import signal
import sys
import time

NOT_STARTED = 127


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


def main() -> int:
    work_dir = sys.argv[1]
    argv = sys.argv[sys.argv.index("--") + 1 :]
    try:
        pid = os.posix_spawnp(argv[0], argv, os.environ)
    except OSError as exc:
        sys.stderr.write(f"cannot start {argv[0]}: {exc.strerror or exc}\n")
        _record(work_dir, NOT_STARTED, 0.0)
        return NOT_STARTED

    def forward(signum, frame) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    _, status, usage = os.wait4(pid, 0)  # retried after a forwarded signal (PEP 475)
    code = os.waitstatus_to_exitcode(status)  # negative: killed by that signal
    _record(work_dir, code, usage.ru_utime + usage.ru_stime)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
