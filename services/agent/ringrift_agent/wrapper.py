"""Runs one job process and records how it ended, so that an agent that restarts while
the job runs can still learn its exit code (a re-adopted process is not its child).

    python -m ringrift_agent.wrapper WORK_DIR -- ARGV...

The wrapper leads the job's process group; SIGTERM is forwarded to the job and the
exit code still recorded, with the CPU seconds (user + system) the job used: the rusage
of the wrapper's waited-for children, which includes every descendant the job itself
waited for (a process the job left running past its own exit is not counted). exit.json
is written atomically.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path


def main() -> int:
    work_dir = Path(sys.argv[1])
    argv = sys.argv[sys.argv.index("--") + 1 :]
    child = subprocess.Popen(argv, cwd=work_dir)

    def forward(signum, frame) -> None:
        try:
            child.send_signal(signum)
        except ProcessLookupError:
            pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    code = child.wait()
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    tmp = work_dir / "exit.json.tmp"
    with tmp.open("w") as handle:
        json.dump({"exit_code": code, "finished_at": time.time(), "cpu_seconds": used.ru_utime + used.ru_stime}, handle)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(work_dir / "exit.json")
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
