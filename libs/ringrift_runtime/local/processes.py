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


@dataclass
class ServiceProcess:
    """A service process started with RINGRIFT_* settings and a ready file."""

    service: str
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    grpc_port: int = 0
    metrics_port: int = 0

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
        return [script]

    def start(self, timeout: float = 20.0, own_session: bool = False) -> "ServiceProcess":
        """Start and wait for the ready file. ``own_session`` keeps terminal signals
        (Ctrl-C) away from the child so its launcher can stop everything in order."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.ready_file.unlink(missing_ok=True)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("RINGRIFT_")},
            "RINGRIFT_SERVER__PORT": "0",
            "RINGRIFT_SERVER__READY_FILE": str(self.ready_file),
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
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"ringrift-{self.service} exited with {self.process.returncode}: {self.log_path.read_text()[-2000:]}"
                )
            if self.ready_file.exists():
                ready = json.loads(self.ready_file.read_text())
                self.grpc_port, self.metrics_port = ready["grpc_port"], ready["metrics_port"]
                return self
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
