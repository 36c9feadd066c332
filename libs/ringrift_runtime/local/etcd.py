"""A real etcd server (Debian's etcd-server) on free loopback ports with a temporary
data directory, stopped by PID. Can be stopped and started again on the same ports and
data (etcd restart scenarios), paused and resumed."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from ringrift_runtime.local.ports import free_port

ETCD_CANDIDATES = ("etcd", "/usr/bin/etcd", "/usr/local/bin/etcd")


class EtcdNotFound(RuntimeError):
    pass


def find_etcd() -> str:
    for candidate in ETCD_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    raise EtcdNotFound(
        "etcd is not installed: install Debian's etcd-server package (apt-get install etcd-server) "
        "or put an etcd binary on PATH"
    )


def install_etcd() -> str:
    """Install Debian's etcd-server for the user when this machine allows it (root, or
    sudo without a password prompt); the path of etcd, or EtcdNotFound saying what to do."""
    apt = shutil.which("apt-get")
    if apt is None:
        raise EtcdNotFound("etcd is not installed and this is not a Debian-like system: put an etcd binary on PATH")
    if os.geteuid() == 0:
        prefix: list[str] = []
    elif shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0:
        prefix = ["sudo", "-n"]
    else:
        raise EtcdNotFound("etcd is not installed: run `sudo apt-get install etcd-server` (or put etcd on PATH)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in ([apt, "update", "-qq"], [apt, "install", "-y", "-qq", "--no-install-recommends", "etcd-server"]):
        result = subprocess.run([*prefix, *command], capture_output=True, text=True, env=env)
        if result.returncode != 0:
            raise EtcdNotFound(f"installing etcd-server failed ({result.stderr.strip()[-300:]}): "
                               "install it yourself with `apt-get install etcd-server`")
    return find_etcd()


class EtcdServer:
    """One single-member etcd cluster on 127.0.0.1."""

    def __init__(self, data_dir: Path, name: str = "test") -> None:
        self.binary = find_etcd()
        self.data_dir = Path(data_dir)
        self.name = name
        self.client_port = free_port()
        self.peer_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}.log"

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self, timeout: float = 20.0) -> None:
        if self.process and self.process.poll() is None:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        client_url = f"http://127.0.0.1:{self.client_port}"
        peer_url = f"http://127.0.0.1:{self.peer_port}"
        args = [
            self.binary,
            "--name", self.name,
            "--data-dir", str(self.data_dir),
            "--listen-client-urls", client_url,
            "--advertise-client-urls", client_url,
            "--listen-peer-urls", peer_url,
            "--initial-advertise-peer-urls", peer_url,
            "--initial-cluster", f"{self.name}={peer_url}",
            "--initial-cluster-state", "new",
            "--log-level", "warn",
            "--logger", "zap",
        ]
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.wait_healthy(timeout)

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.endpoint}/health", timeout=1) as reply:
                return reply.status == 200 and b'"true"' in reply.read()
        except (urllib.error.URLError, OSError):
            return False

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"etcd exited with {self.process.returncode}; see {self.log_path}")
            if self.healthy():
                return
            time.sleep(0.05)
        raise TimeoutError(f"etcd on {self.endpoint} not healthy after {timeout}s; see {self.log_path}")

    def stop(self, kill: bool = False, timeout: float = 10.0) -> None:
        """Stop by PID (SIGTERM, or SIGKILL with ``kill``); wait for the exit."""
        if self.process is None or self.process.poll() is not None:
            self.process = None
            return
        self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def __enter__(self) -> "EtcdServer":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
