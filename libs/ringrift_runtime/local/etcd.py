"""A real etcd server (Debian's etcd-server) on free loopback ports with a temporary
data directory, stopped by PID. Can be stopped and started again on the same ports and
data (etcd restart scenarios), paused and resumed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from ringrift_runtime.local.ports import free_port
from ringrift_runtime.security.tls import CertFiles
from ringrift_runtime.settings import EtcdSettings

ETCD_CANDIDATES = ("etcd", "/usr/bin/etcd", "/usr/local/bin/etcd")

# Retention (BEHAVIOUR.md): etcd keeps the last 10,000 revisions and compacts the rest, or
# every agent's NodeInfo refresh fills its quota within a day at 100 agents. compose.yaml's
# etcd runs with the same flags (a test compares them).
COMPACTION_ARGS = ("--auto-compaction-mode=revision", "--auto-compaction-retention=10000")


# The members of one host's cluster (this fixture, compose) talk over loopback or one
# bridge: a 50 ms heartbeat and a 500 ms election timeout (etcd's defaults are 100 and
# 1000 for networks with more latency) bring a new raft leader within about a second of
# the old one's death, while a leader of RingRift can still confirm its lease (compose.yaml
# runs its members the same way; a test compares them). Pre-vote (etcd 3.5's default, off
# in 3.4): a member that comes back (a restart fast-forwards its election ticks) asks
# before it campaigns, so it cannot depose a raft leader the others still follow, and the
# leases kept through it see no election for nothing.
RAFT_ARGS = ("--heartbeat-interval=50", "--election-timeout=500", "--pre-vote=true")


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
            raise EtcdNotFound(
                f"installing etcd-server failed ({result.stderr.strip()[-300:]}): "
                "install it yourself with `apt-get install etcd-server`"
            )
    return find_etcd()


PORT_ATTEMPTS = 3  # a first start on ports another process took meanwhile


class EtcdServer:
    """One etcd member on 127.0.0.1: a single-member cluster by itself, or one member of
    an EtcdCluster (which gives it the cluster's ``initial_cluster``)."""

    def __init__(
        self,
        data_dir: Path,
        name: str = "test",
        tls: CertFiles | None = None,
        client: CertFiles | None = None,
        compaction: tuple[str, ...] = COMPACTION_ARGS,
    ) -> None:
        self.compaction = compaction  # a soak at accelerated time compacts on its own clock
        self.tls = tls  # etcd's own certificate: clients and peers must present one from the same CA
        self.client = client  # the certificate client_settings() presents
        self.binary = find_etcd()
        self.data_dir = Path(data_dir)
        self.name = name
        self.client_port = free_port()
        self.peer_port = free_port()
        # Plain-HTTP /metrics and /health on loopback only (Prometheus scrapes it; no keys).
        self.metrics_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}.log"
        self._served = False  # healthy once: its ports are known to its clients
        self.initial_cluster = ""  # name=peer-url,...; this member alone when empty
        self.raft_args: tuple[str, ...] = ()  # an EtcdCluster's heartbeat and election timeout

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def endpoints(self) -> list[str]:
        return [self.endpoint]

    @property
    def peer_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.peer_port}"

    def client_settings(self, cluster_name: str = "test", **fields: Any) -> EtcdSettings:
        """Settings of a client of this etcd (mutual TLS with ``client`` when etcd has TLS)."""
        tls: dict[str, Any] = {"insecure": True}
        if self.tls is not None:
            assert self.client is not None, "an etcd with TLS needs a client certificate for its clients"
            tls = {
                "insecure": False,
                "ca_file": self.client.ca,
                "cert_file": self.client.cert,
                "key_file": self.client.key,
            }
        return EtcdSettings(endpoints=self.endpoints, cluster_name=cluster_name, **tls, **fields)

    def etcdctl(self, *args: str, timeout: float = 10) -> subprocess.CompletedProcess[bytes]:
        """Run etcdctl against this etcd (with the client certificate when etcd has TLS)."""
        command = ["etcdctl", "--endpoints", self.url]
        if self.tls is not None and self.client is not None:
            command += ["--cacert", str(self.client.ca), "--cert", str(self.client.cert), "--key", str(self.client.key)]
        return subprocess.run(
            [*command, *args], env={**os.environ, "ETCDCTL_API": "3"}, capture_output=True, timeout=timeout, check=True
        )

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.endpoint}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self, timeout: float = 20.0) -> None:
        """Start and wait until healthy. A first start whose port was taken between
        choosing it and etcd binding it (another process on the machine) is tried again on
        new ports; a member that served before keeps its ports (its clients know them)."""
        for attempt in range(PORT_ATTEMPTS):
            self.launch()
            try:
                self.wait_healthy(timeout)
            except RuntimeError:
                if self._served or self.initial_cluster or attempt == PORT_ATTEMPTS - 1 or not self._port_taken():
                    raise
                self.new_ports()
                continue
            self._served = True
            return

    def new_ports(self) -> None:
        """New ports for a first start that failed on a taken one (its data directory
        and log go too: nothing was served from them)."""
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self.log_path.unlink(missing_ok=True)
        self.client_port, self.peer_port, self.metrics_port = free_port(), free_port(), free_port()

    def _port_taken(self) -> bool:
        try:
            return "address already in use" in self.log_path.read_text(errors="replace")
        except OSError:
            return False

    def launch(self) -> None:
        """Start the process without waiting (a member of a new multi-member cluster is
        healthy only once a quorum of its peers runs)."""
        if self.process and self.process.poll() is None:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        client_url = self.url
        args = [
            self.binary,
            "--name",
            self.name,
            "--data-dir",
            str(self.data_dir),
            "--listen-client-urls",
            client_url,
            "--advertise-client-urls",
            client_url,
            "--listen-peer-urls",
            self.peer_url,
            "--initial-advertise-peer-urls",
            self.peer_url,
            "--initial-cluster",
            self.initial_cluster or f"{self.name}={self.peer_url}",
            "--initial-cluster-state",
            "new",
            "--log-level",
            "warn",
            "--logger",
            "zap",
            "--listen-metrics-urls",
            f"http://127.0.0.1:{self.metrics_port}",
            *self.compaction,
            *self.raft_args,
            *self._tls_args(),
        ]
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()

    def _tls_args(self) -> list[str]:
        if self.tls is None:
            return []
        ca, cert, key = str(self.tls.ca), str(self.tls.cert), str(self.tls.key)
        return [
            "--client-cert-auth", "--trusted-ca-file", ca, "--cert-file", cert, "--key-file", key,
            "--peer-client-cert-auth", "--peer-trusted-ca-file", ca, "--peer-cert-file", cert, "--peer-key-file", key,
        ]  # fmt: skip

    def healthy(self) -> bool:
        context = None
        if self.tls is not None:
            context = ssl.create_default_context(cafile=str(self.tls.ca))
            context.load_cert_chain(str(self.tls.cert), str(self.tls.key))
        scheme = "https" if self.tls else "http"
        try:
            with urllib.request.urlopen(f"{scheme}://{self.endpoint}/health", timeout=1, context=context) as reply:
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

    def __enter__(self) -> EtcdServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class EtcdCluster:
    """A ``size``-member etcd cluster on 127.0.0.1 (three by default, as compose runs),
    each member its own process with its own data directory, stopped and killed by PID
    one at a time. Clients are given every member's endpoint."""

    def __init__(
        self,
        root: Path,
        size: int = 3,
        tls: CertFiles | None = None,
        client: CertFiles | None = None,
        compaction: tuple[str, ...] = COMPACTION_ARGS,
    ) -> None:
        self.tls = tls
        self.client = client
        self.members = [
            EtcdServer(
                Path(root) / f"member{index}", name=f"member{index}", tls=tls, client=client, compaction=compaction
            )
            for index in range(size)
        ]
        for member in self.members:
            member.raft_args = RAFT_ARGS
        self._set_initial_cluster()

    @property
    def endpoints(self) -> list[str]:
        return [member.endpoint for member in self.members]

    @property
    def endpoint(self) -> str:
        return self.members[0].endpoint

    def client_settings(self, cluster_name: str = "test", **fields: Any) -> EtcdSettings:
        """Settings of a client of this cluster: every member's endpoint."""
        return self.members[0].client_settings(cluster_name, **fields).model_copy(update={"endpoints": self.endpoints})

    def start(self, timeout: float = 30.0) -> None:
        """Start every member and wait until each is healthy. A first start on which a
        member found one of its ports taken (another process bound it between choosing
        and binding) is tried again with new ports for every member."""
        for attempt in range(PORT_ATTEMPTS):
            for member in self.members:
                member.launch()
            try:
                self._wait_healthy(timeout)
            except RuntimeError:
                taken = any(member._port_taken() for member in self.members)
                if attempt == PORT_ATTEMPTS - 1 or not taken:
                    raise
                for member in self.members:
                    member.stop(kill=True)  # nothing served yet; SIGTERM waits ~10 s for the lost peer
                for member in self.members:
                    member.new_ports()
                self._set_initial_cluster()
                continue
            for member in self.members:
                member._served = True
            return

    def _wait_healthy(self, timeout: float) -> None:
        """Until every member is healthy; a member that exited ends the wait at once."""
        deadline = time.monotonic() + timeout
        waiting = list(self.members)
        while waiting:
            for member in list(waiting):
                if member.process is not None and member.process.poll() is not None:
                    raise RuntimeError(f"etcd exited with {member.process.returncode}; see {member.log_path}")
                if member.healthy():
                    waiting.remove(member)
            if waiting and time.monotonic() > deadline:
                raise TimeoutError(f"etcd members {[m.name for m in waiting]} not healthy after {timeout}s")
            time.sleep(0.05)

    def _set_initial_cluster(self) -> None:
        initial = ",".join(f"{member.name}={member.peer_url}" for member in self.members)
        for member in self.members:
            member.initial_cluster = initial

    def stop(self) -> None:
        for member in self.members:
            member.stop()

    def status(self) -> list[dict[str, Any]]:
        """``etcdctl endpoint status`` of every running member: member_id, leader, raft_term."""
        running = [member for member in self.members if member.process is not None]
        found: list[dict[str, Any]] = []
        for member in running:
            reply = json.loads(member.etcdctl("endpoint", "status", "-w", "json").stdout)
            header = reply[0]["Status"]["header"]
            found.append(
                {
                    "name": member.name,
                    "member_id": header["member_id"],
                    "leader": reply[0]["Status"]["leader"],
                    "raft_term": header["raft_term"],
                }
            )
        return found

    def leader_index(self) -> int:
        """Which member is the raft leader now."""
        return self._leader_of(self.status())

    @staticmethod
    def _leader_of(statuses: list[dict]) -> int:
        leader = statuses[0]["leader"]
        for status in statuses:
            if status["member_id"] == leader:
                return int(status["name"].removeprefix("member"))
        raise RuntimeError("no member reports itself as the leader")

    def move_leader(self, index: int) -> None:
        """Make member ``index`` the raft leader (etcdctl move-leader, asked of the current one)."""
        statuses = self.status()  # asked once of every member
        current = self._leader_of(statuses)
        if current == index:
            return
        target = next(s["member_id"] for s in statuses if s["name"] == self.members[index].name)
        self.members[current].etcdctl("move-leader", format(target, "x"))

    def __enter__(self) -> EtcdCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
