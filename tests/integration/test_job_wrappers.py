"""The agent's two job wrappers, the native program and wrapper.py, against one contract:
the same command line and standby input, the same exit.json and exit codes, the same
logs, limits and signals. Real processes, real files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from ringrift_agent.adapters.runner import NATIVE_WRAPPER, WRAPPER, standby_input, wrapper_command

PATH = {"PATH": os.defpath}


@pytest.fixture(params=["native", "python"])
def wrapper(request) -> list[str]:
    if request.param == "native":
        assert os.access(NATIVE_WRAPPER, os.X_OK), "the native wrapper is built by the install (hatch_build.py)"
        return [str(NATIVE_WRAPPER)]
    return [sys.executable, "-S", str(WRAPPER)]


def ended(work_dir: Path) -> dict:
    return json.loads((work_dir / "exit.json").read_text())


def test_the_agent_runs_the_native_wrapper_when_it_was_built() -> None:
    assert wrapper_command("native") == [str(NATIVE_WRAPPER)]
    assert wrapper_command("python") == [sys.executable, "-S", str(WRAPPER)]


def test_the_exit_code_and_cpu_seconds_are_recorded(wrapper: list[str], tmp_path: Path) -> None:
    burn = "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; exit 3"
    result = subprocess.run([*wrapper, str(tmp_path), "--", "sh", "-c", burn], env=PATH, timeout=60)
    record = ended(tmp_path)
    assert result.returncode == 3 and record["exit_code"] == 3
    assert 0.05 < record["cpu_seconds"] < 60  # the shell's loop, measured as the wrapper reaped it
    assert abs(record["finished_at"] - time.time()) < 60
    assert not (tmp_path / "exit.json.tmp").exists()


def test_a_program_that_cannot_start_is_127_and_says_why(wrapper: list[str], tmp_path: Path) -> None:
    result = subprocess.run(
        [*wrapper, str(tmp_path), "--", "/nonexistent/program"], env=PATH, capture_output=True, timeout=30
    )
    assert result.returncode == 127 and ended(tmp_path)["exit_code"] == 127
    assert b"cannot start /nonexistent/program: No such file or directory" in result.stderr


def test_a_cpu_limit_ends_the_job_with_sigxcpu(wrapper: list[str], tmp_path: Path) -> None:
    result = subprocess.run(
        [*wrapper, str(tmp_path), "cpu=1", "--", "sh", "-c", "while :; do :; done"], env=PATH, timeout=60
    )
    assert ended(tmp_path)["exit_code"] == -signal.SIGXCPU
    assert result.returncode == 128 + signal.SIGXCPU


def test_a_forwarded_sigterm_ends_the_job_and_is_recorded(wrapper: list[str], tmp_path: Path) -> None:
    process = subprocess.Popen([*wrapper, str(tmp_path), "--", "sleep", "30"], env=PATH, start_new_session=True)
    deadline = time.monotonic() + 10
    while not any(child.cmdline() == ["sleep", "30"] for child in psutil.Process(process.pid).children()):
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)  # to the wrapper only: it forwards it
    assert process.wait(10) == 128 + signal.SIGTERM
    assert ended(tmp_path)["exit_code"] == -signal.SIGTERM


def test_a_standby_wrapper_runs_the_job_it_is_handed(wrapper: list[str], tmp_path: Path) -> None:
    """Its work directory, environment, logs (appended), /dev/null as stdin and limits come
    from the input; the program is found on the wrapper's own PATH."""
    work_dir = tmp_path / "work dir"
    work_dir.mkdir()
    (work_dir / "stdout.log").write_text("before\n")
    script = 'pwd; echo "$JOB_VALUE"; cat; ulimit -n; echo oops >&2'
    job = standby_input(work_dir, ["sh", "-c", script], {"JOB_VALUE": "a=b c", **PATH}, {"nofile": 64})
    assert job is not None
    result = subprocess.run([*wrapper, "--standby"], input=job, env=PATH, cwd=tmp_path, timeout=30)
    assert result.returncode == 0 and ended(work_dir)["exit_code"] == 0
    assert (work_dir / "stdout.log").read_text().split("\n") == ["before", str(work_dir), "a=b c", "64", ""]
    assert (work_dir / "stderr.log").read_text() == "oops\n"


def test_a_standby_wrapper_without_a_job_does_nothing(wrapper: list[str], tmp_path: Path) -> None:
    result = subprocess.run([*wrapper, "--standby"], input=b"", env=PATH, cwd=tmp_path, timeout=30)
    assert result.returncode == 0 and list(tmp_path.iterdir()) == []


def test_a_value_holding_a_nul_is_never_handed_to_a_standby_wrapper(tmp_path: Path) -> None:
    """A NUL would end its field early and start another (an argument becoming a work
    directory or an environment entry): such a job starts its own wrapper instead, which
    refuses it as the operating system does."""
    assert standby_input(tmp_path, ["echo", "a\0Wother"], PATH, {}) is None
    assert standby_input(tmp_path, ["echo"], {"K": "v\0Ex=y"}, {}) is None
    assert standby_input(tmp_path, ["echo", "fine"], PATH, {}) is not None
