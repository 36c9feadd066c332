"""How fast does one agent pull a 1 GiB file from another over loopback, encrypted?

Real agent processes with mutual TLS (etcd for their membership, a StateService that
issued the pull's epoch); the target agent pulls a 1 GiB file of random bytes from the
source agent with PullFile (written to .partial, sha256-verified, renamed): over the
source's byte stream, encrypted with TLS 1.3 (the default); over the same stream in
plaintext (security.plaintext_file_stream, an opt-in for trusted networks; integrity
still by sha256); and, from a target with agent.file_stream_port=-1, over the ReadFile
gRPC stream that pulls fall back to (TLS too). References measured in the same run on
the same machine: rsync over ssh to a Debian openssh-server on loopback (what a user
would otherwise run between nodes, encrypted: the one to beat), rsync in daemon mode
(plaintext) and a plain file copy (the machine's local limit). Every run writes a fresh
target file; the source stays in the page cache for all of them.

    .venv/bin/python -m bench.transfer [--size-mib 1024] [--runs 5] [--quick] [--json]

``--quick``: 256 MiB, 2 runs (about a minute). ``--json`` prints one object: size_mib, runs,
and the median MiB/s of tls_mib_s, plain_mib_s, grpc_mib_s, rsync_ssh_mib_s,
rsync_daemon_mib_s, copy_mib_s, with ratio_tls_to_rsync_ssh.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import hashlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench._common import machine, median_range, table
from bench._security import CLUSTER, BenchSecurity, service
from bench._security import agent as agent_identity
from ringrift.agent.v1 import agent_pb2, agent_pb2_grpc
from ringrift_agent.adapters.files import sha256_of
from ringrift_runtime.local.etcd import EtcdServer
from ringrift_runtime.local.processes import ServiceProcess

PATH = "games/square8_2p/big.db"
SECURITY: BenchSecurity | None = None  # set in main: mutual TLS everywhere


def agent(root: Path, etcd: EtcdServer, node_id: str, state: str = "", **env: str) -> ServiceProcess:
    assert SECURITY is not None
    return ServiceProcess(
        "agent",
        root / node_id,
        env={
            **SECURITY.env(agent_identity(node_id, CLUSTER)),
            **env,
            "RINGRIFT_AGENT__NODE_ID": node_id,
            "RINGRIFT_AGENT__DATA_DIR": str(root / node_id / "data"),
            "RINGRIFT_ENDPOINTS__JOBS": "127.0.0.1:9",
            "RINGRIFT_ENDPOINTS__STATE": state,
            "RINGRIFT_ETCD__ENDPOINTS": f'["{etcd.endpoint}"]',
            "RINGRIFT_METRICS__ENABLED": "false",
            "RINGRIFT_LOGGING__LEVEL": "WARNING",
        },
    )


def write_random(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    block = os.urandom(1 << 20)
    with path.open("wb") as handle:
        for index in range(size >> 20):
            handle.write(block[index % 7 :] + block[: index % 7])  # distinct blocks, cheap to make


async def pull_once(
    source: ServiceProcess, target: ServiceProcess, target_root: Path, sha: str, size: int, epoch: int = 1
) -> float:
    assert SECURITY is not None
    (target_root / PATH).unlink(missing_ok=True)
    request = agent_pb2.PullFileRequest(
        source_address=source.address,
        source_node_id=source.env["RINGRIFT_AGENT__NODE_ID"],
        path=PATH,
        sha256=sha,
        size_bytes=size,
        transfer_id="bench",
        epoch=epoch,
    )
    server = agent_identity(target.env["RINGRIFT_AGENT__NODE_ID"], CLUSTER)
    async with SECURITY.channel(target.address, server, service("sync", CLUSTER)) as channel:
        stub = agent_pb2_grpc.NodeAgentServiceStub(channel)
        started = time.perf_counter()
        async for progress in stub.PullFile(request, timeout=600):
            last = progress
        elapsed = time.perf_counter() - started
    assert last.completed and last.bytes_done == size
    return elapsed


def sha256_rate() -> float:
    block = os.urandom(64 << 20)
    digest = hashlib.sha256()
    started = time.perf_counter()
    for _ in range(16):
        digest.update(block)
    return 1024 / (time.perf_counter() - started)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rsync_daemon(root: Path, module_dir: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    config = root / "rsyncd.conf"
    config.write_text(
        f"use chroot = no\npid file = {root / 'rsyncd.pid'}\n[data]\n  path = {module_dir}\n  read only = yes\n"
    )
    daemon = subprocess.Popen(
        ["rsync", "--daemon", "--no-detach", f"--config={config}", f"--port={port}", "--address=127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    return daemon, port


def rsync_once(port: int, target: Path) -> float:
    target.unlink(missing_ok=True)
    started = time.perf_counter()
    subprocess.run(["rsync", "--whole-file", f"rsync://127.0.0.1:{port}/data/{PATH}", str(target)], check=True)
    return time.perf_counter() - started


def ssh_server(root: Path) -> tuple[subprocess.Popen, int, Path]:
    """Debian's sshd on a free loopback port with its own host key and one authorized key
    (a throwaway pair); (daemon, port, the client's private key)."""
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    if not Path(sshd).exists():
        raise SystemExit("bench.transfer needs openssh-server for its reference: apt-get install openssh-server")
    port = free_port()
    host_key, user_key = root / "ssh_host_ed25519_key", root / "id_ed25519"
    for key in (host_key, user_key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    (root / "authorized_keys").write_text((root / "id_ed25519.pub").read_text())
    config = root / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\nPidFile {root / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {root / 'authorized_keys'}\nPasswordAuthentication no\nStrictModes no\n"
        "UsePAM no\nPermitRootLogin prohibit-password\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)  # its privilege-separation directory
    daemon = subprocess.Popen([sshd, "-D", "-e", "-f", str(config)], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return daemon, port, user_key
        time.sleep(0.1)
    daemon.kill()
    raise SystemExit("sshd did not start")


def rsync_ssh_once(port: int, key: Path, source: Path, target: Path) -> float:
    target.unlink(missing_ok=True)
    ssh = f"ssh -p {port} -i {key} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -q"
    user = getpass.getuser()
    started = time.perf_counter()
    subprocess.run(["rsync", "--whole-file", "-e", ssh, f"{user}@127.0.0.1:{source}", str(target)], check=True)
    return time.perf_counter() - started


def copy_once(source: Path, target: Path) -> float:
    target.unlink(missing_ok=True)
    started = time.perf_counter()
    shutil.copyfile(source, target)  # no fsync, like the other two
    return time.perf_counter() - started


async def wait_member(etcd: EtcdServer, node_id: str) -> None:
    for _ in range(200):
        if etcd.etcdctl("get", f"/ringrift/{CLUSTER}/nodes/{node_id}", "--print-value-only").stdout.strip():
            return
        await asyncio.sleep(0.05)
    raise SystemExit(f"agent {node_id} never registered")


async def main() -> None:
    global SECURITY
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="256 MiB, 2 runs")
    parser.add_argument("--json", action="store_true", help="one JSON object of the figures")
    args = parser.parse_args()
    if args.quick:
        args.size_mib, args.runs = 256, 2
    if shutil.which("rsync") is None:
        raise SystemExit("bench.transfer needs rsync for its reference: apt-get install rsync")
    size = args.size_mib << 20
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        SECURITY = BenchSecurity(root, secure=True)
        etcd = SECURITY.etcd(root / "etcd")
        etcd.start()
        state = ServiceProcess(
            "state",
            root / "state",
            env={
                **SECURITY.env(service("state", CLUSTER)),
                "RINGRIFT_ETCD__ENDPOINTS": f'["{etcd.endpoint}"]',
                "RINGRIFT_STATE__DATABASE_URL": f"sqlite+aiosqlite:///{root}/state.db",
                "RINGRIFT_METRICS__ENABLED": "false",
                "RINGRIFT_ETCD__REGISTER_SERVICE": "false",
            },
        )
        state.start()
        epoch = await SECURITY.issue_epoch(etcd, state.address)
        plain = {"RINGRIFT_SECURITY__PLAINTEXT_FILE_STREAM": "true"}
        source, target = agent(root, etcd, "source", state.address), agent(root, etcd, "target", state.address)
        plain_source = agent(root, etcd, "plain-source", state.address, **plain)
        plain_target = agent(root, etcd, "plain-target", state.address, **plain)
        grpc_target = agent(root, etcd, "grpc-target", state.address, RINGRIFT_AGENT__FILE_STREAM_PORT="-1")
        agents = (source, target, plain_source, plain_target, grpc_target)
        for process in agents:
            process.start()
        for process in agents:
            await wait_member(etcd, process.env["RINGRIFT_AGENT__NODE_ID"])
        daemon = sshd = None
        try:
            source_file = root / "source" / "data" / PATH
            write_random(source_file, size)
            plain_file = root / "plain-source" / "data" / PATH
            plain_file.parent.mkdir(parents=True)
            shutil.copyfile(source_file, plain_file)
            sha = sha256_of(source_file)
            target_root = root / "target" / "data"
            plain_root = root / "plain-target" / "data"
            grpc_root = root / "grpc-target" / "data"
            daemon, port = rsync_daemon(root, root / "source" / "data")
            sshd, ssh_port, key = ssh_server(root)
            (target_root / "rsync").mkdir(parents=True, exist_ok=True)
            rsync_file = target_root / "rsync" / "big.db"
            results: dict[str, list[float]] = {
                name: [] for name in ("tls", "plain", "grpc", "rsync-ssh", "rsync-daemon", "copy")
            }

            async def run(name: str, once) -> None:
                os.sync()  # no dirty pages left for the next method to pay for
                results[name].append(size / await once() / (1 << 20))

            def timed(function, *arguments):
                async def once() -> float:
                    return await asyncio.to_thread(function, *arguments)

                return once

            pulls = {
                "tls": lambda: pull_once(source, target, target_root, sha, size, epoch),
                "plain": lambda: pull_once(plain_source, plain_target, plain_root, sha, size, epoch),
                "grpc": lambda: pull_once(source, grpc_target, grpc_root, sha, size, epoch),
            }
            for once in pulls.values():  # warm-up (hash cache, page cache, connections)
                await once()
            rsync_ssh_once(ssh_port, key, source_file, rsync_file)
            for _ in range(args.runs):
                for name, once in pulls.items():
                    await run(name, once)
                await run("rsync-ssh", timed(rsync_ssh_once, ssh_port, key, source_file, rsync_file))
                await run("rsync-daemon", timed(rsync_once, port, rsync_file))
                await run("copy", timed(copy_once, source_file, target_root / "copy.db"))
                for leftover in (target_root / PATH, plain_root / PATH, grpc_root / PATH, rsync_file):
                    leftover.unlink(missing_ok=True)
        finally:
            for server in (daemon, sshd):
                if server is not None:
                    server.terminate()
                    server.wait()
            for process in (*agents, state):
                process.stop()
            etcd.stop()
    ratio = statistics.median(results["tls"]) / statistics.median(results["rsync-ssh"])
    if args.json:
        figures: dict[str, float] = {"size_mib": args.size_mib, "runs": args.runs}
        for name, values in results.items():
            figures[f"{name.replace('-', '_')}_mib_s"] = round(statistics.median(values), 1)
        figures["ratio_tls_to_rsync_ssh"] = round(ratio, 3)
        print(json.dumps(figures))
        return
    print(
        table(
            f"Agent-to-agent transfer of {args.size_mib} MiB over loopback "
            f"(MiB/s, median and range over {args.runs} runs)",
            [
                (
                    "PullFile, TLS 1.3 byte stream (the default; sha256 verified)",
                    median_range(results["tls"]),
                    "rsync over ssh (openssh, default cipher): " + median_range(results["rsync-ssh"]),
                ),
                ("encrypted pull / rsync over ssh (medians)", f"{ratio:.2f}", "goal ≥ 1.00"),
                (
                    "PullFile, plaintext byte stream (plaintext_file_stream opt-in)",
                    median_range(results["plain"]),
                    "rsync daemon (plaintext): " + median_range(results["rsync-daemon"]),
                ),
                ("PullFile over gRPC only (TLS; file_stream_port=-1)", median_range(results["grpc"]), ""),
                ("sha256 of 1 GiB in memory on this CPU (the check's ceiling)", f"{sha256_rate():.0f}", ""),
                ("plain file copy (local limit)", median_range(results["copy"]), ""),
            ],
        )
    )
    print(f"\nmachine: {machine()}")


if __name__ == "__main__":
    asyncio.run(main())
