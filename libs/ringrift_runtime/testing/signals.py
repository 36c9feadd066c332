"""Signalling processes from tests without ever hurting the test run itself: a pid of 0
or below (a whole process group, or every process), this process's own group, or a
process that merely reused a pid is never signalled."""

from __future__ import annotations

import os
import signal

import psutil


def kill_group(leader: int, mentions: str, signum: int = signal.SIGKILL) -> bool:
    """Signal the process group that ``leader`` leads, only when ``leader`` is a positive
    pid, leads its own group, that group is not this process's, and its command line or
    working directory mentions ``mentions`` (e.g. the test's temporary directory: the
    process is one this test started; a job wrapper started ahead by an agent runs in the
    job's work directory). True when the signal was sent."""
    if leader <= 0 or not mentions:
        return False
    try:
        process = psutil.Process(leader)
        if os.getpgid(leader) != leader or leader == os.getpgrp():
            return False
        if not any(mentions in part for part in [*process.cmdline(), process.cwd()]):
            return False
        os.killpg(leader, signum)
        return True
    except (psutil.Error, ProcessLookupError, PermissionError):
        return False
