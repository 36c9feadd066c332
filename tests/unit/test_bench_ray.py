"""The benchmarks' Ray head is stopped whole: every process it started is found (its
descendants, and the ones that detached but name its temporary directory) and ended,
and nothing else is touched. Checked on a stand-in process tree: Ray itself is optional."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psutil

from bench._ray import RayHead, stop_all
from tests.polling import wait_for

# A "head" that starts a child of its own and one that detaches (double fork, like a
# daemon), both naming the temporary directory; each sleeps until stopped.
HEAD = """
import os, subprocess, sys, time
temp = sys.argv[1]
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", temp])
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(600)", temp + "/session"])
    os._exit(0)
time.sleep(600)
"""


def test_every_process_of_the_head_is_found_and_stopped_and_no_other(tmp_path: Path) -> None:
    temp = str(tmp_path / "rb-head")
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", str(tmp_path / "other")])
    head_process = subprocess.Popen([sys.executable, "-c", HEAD, temp], start_new_session=True)
    try:
        head = RayHead("127.0.0.1:1", "", head_process.pid, temp)
        assert wait_for(lambda: len(head.processes()) == 3), [p.pid for p in head.processes()]
        found = {p.pid for p in head.processes()}
        assert head_process.pid in found and bystander.pid not in found
        detached = [p for p in head.processes() if p.pid != head_process.pid and p.ppid() != head_process.pid]
        assert len(detached) == 1  # found by its command line, not by descent
        mib, count = head.resident_mib()
        assert count == 3 and mib > 0

        stop_all(head.processes(), grace=5)
        head_process.wait(5)
        assert wait_for(lambda: not any(_alive(pid) for pid in found))
        assert head.processes() == []
        assert bystander.poll() is None  # not this head's
    finally:
        for process in (head_process, bystander):
            process.kill()
            process.wait()


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
