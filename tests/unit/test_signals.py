"""The suite's own safety: a test never signals pid 0, its own process group, or a
process it did not start."""

from __future__ import annotations

import os
import subprocess
import sys

from ringrift_runtime.testing.signals import kill_group


def test_pid_zero_negative_and_the_own_group_are_never_signalled(tmp_path) -> None:
    assert not kill_group(0, str(tmp_path))  # killpg(0) is this process's own group
    assert not kill_group(-1, str(tmp_path))  # killpg(-1) would be every process
    assert not kill_group(os.getpgrp(), "python")  # the test runner's group, whatever it mentions


def test_only_a_group_leader_that_names_the_test_is_signalled(tmp_path) -> None:
    marker = str(tmp_path / "marker")
    child = subprocess.Popen([sys.executable, "-c", "import time, sys; time.sleep(60)", marker], start_new_session=True)
    try:
        assert not kill_group(child.pid, str(tmp_path / "another-test"))  # not the process this test started
        assert child.poll() is None
        assert kill_group(child.pid, marker)
        assert child.wait(10) < 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
