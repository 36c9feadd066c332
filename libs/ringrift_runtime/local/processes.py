"""Start RingRift service processes from their console scripts, as a user would."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

# Where the local autoscaling provider keeps the pid of each agent it started
# (<dir>/<node>/agent.pid), so that `ringrift down` and a new leader can stop them.
LOCAL_AGENT_PID_FILE = "agent.pid"


@dataclass
class ServiceProcess:
    """A service process started with RINGRIFT_* settings and a ready file."""

    service: str
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    grpc_port: int = 0
    metrics_port: int = 0
    token_port: int = 0  # the gateway's port for token holders, when it has one
    args: list[str] = field(default_factory=list)  # after the console script (ringrift-cohost's --service)
    # Every service the process serves, by name: (gRPC port, metrics port); several when co-hosting.
    services: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def ready_file(self) -> Path:
        return self.workdir / f"{self.service}.ready.json"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.service}.log"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def command(self) -> list[str]:
        script = shutil.which(f"ringrift-{self.service}", path=str(Path(sys.executable).parent))
        if script is None:
            raise FileNotFoundError(f"ringrift-{self.service} is not installed: pip install -e '.[dev]'")
        return [script, *self.args]

    def address_of(self, service: str) -> str:
        """Where this process serves ``service`` (one of several when it co-hosts)."""
        return f"127.0.0.1:{self.services[service][0]}"

    def start(self, timeout: float = 20.0, own_session: bool = False) -> ServiceProcess:
        """Start and wait for the ready file. ``own_session`` keeps terminal signals
        (Ctrl-C) away from the child so its launcher can stop everything in order."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.ready_file.unlink(missing_ok=True)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("RINGRIFT_")},
            "RINGRIFT_SERVER__PORT": "0",
            "RINGRIFT_SERVER__READY_FILE": str(self.ready_file),
            # The process writes its log itself (rotated: logging.file_max_bytes); its
            # stdout and stderr go to the same file for what does not pass through logging.
            "RINGRIFT_LOGGING__FILE": str(self.log_path),
            **self.env,
        }
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.workdir,
                start_new_session=own_session,
            )
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop(timeout=5.0)  # a process that did not come up is never left behind
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"ringrift-{self.service} exited with {self.process.returncode}: "
                    f"{self.log_path.read_text()[-2000:]}"
                )
            if self.ready_file.exists():
                ready = json.loads(self.ready_file.read_text())
                self.grpc_port, self.metrics_port = ready["grpc_port"], ready["metrics_port"]
                self.token_port = ready.get("token_port", 0)
                served = ready.get("services") or {self.service: ready}
                self.services = {name: (port["grpc_port"], port["metrics_port"]) for name, port in served.items()}
                return
            time.sleep(0.05)
        raise TimeoutError(f"ringrift-{self.service} not ready after {timeout}s: {self.log_path.read_text()[-2000:]}")

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def started_at(pid: int) -> float:
    """A process's start time (with its pid, what identifies it); 0.0 when it is gone."""
    try:
        return psutil.Process(pid).create_time() if pid > 0 else 0.0
    except psutil.Error:
        return 0.0


def signal_if_same(pid: int, created: float, signum: int = signal.SIGTERM) -> bool:
    """Signal ``pid`` only while it is the process that started at ``created``: never pid 0
    or below (a process group, or every process), never a process that reused the pid.
    True when a signal was sent."""
    if pid <= 0 or not created:
        return False
    try:
        if psutil.Process(pid).create_time() != created:
            return False
        os.kill(pid, signum)
        return True
    except (psutil.Error, ProcessLookupError):
        return False


def write_pid_file(path: Path, pid: int) -> None:
    """Remember a process we started: its pid and start time, so that signalling it later
    never hits another process that reused the pid."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps({"pid": pid, "created": started_at(pid)}))
    tmp.replace(path)


def signal_pid_file(path: Path, signum: int = signal.SIGTERM) -> bool:
    """Signal the process a pid file names, only while it is still that process (pid > 0,
    same start time); the file is removed either way. True when a signal was sent."""
    try:
        recorded = json.loads(path.read_text())
        pid, created = int(recorded["pid"]), float(recorded["created"])
    except (OSError, ValueError, KeyError, TypeError):
        path.unlink(missing_ok=True)
        return False
    path.unlink(missing_ok=True)
    return signal_if_same(pid, created, signum)


def signal_pid_files(directory: Path, pattern: str, signum: int = signal.SIGTERM) -> int:
    """``signal_pid_file`` for every file matching ``pattern`` under ``directory``."""
    return sum(signal_pid_file(path, signum) for path in sorted(directory.glob(pattern)))
