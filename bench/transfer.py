"""How fast does one agent pull a 1 GiB file from another over loopback?

Real agent processes (and etcd for their membership); the target agent pulls a 1 GiB
file of random bytes from the source agent with PullFile (written to .partial,
sha256-verified, renamed): over the source's sendfile byte stream (OpenFileStream), and,
from a second target with agent.file_stream_port=-1, over the ReadFile gRPC stream that
pulls fall back to. References measured in the same run on
the same machine: rsync in daemon mode over loopback (rsync://127.0.0.1, what a user
would otherwise run between nodes) and a plain file copy (the machine's local limit).
Every run writes a fresh target file; the source stays in the page cache for all three.

    .venv/bin/python -m bench.transfer [--size-mib 1024] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import grpc

from bench._common import machine, median_range, table
from ringrift.agent.v1 import agent_pb2, agent_pb2_grpc
from ringrift_agent.adapters.files import sha256_of
from ringrift_runtime.local.etcd import EtcdServer
from ringrift_runtime.local.processes import ServiceProcess

PATH = "games/square8_2p/big.db"


def agent(root: Path, etcd: EtcdServer, node_id: str, **env: str) -> ServiceProcess:
    return ServiceProcess("agent", root / node_id, env={**env,
        "RINGRIFT_AGENT__NODE_ID": node_id, "RINGRIFT_AGENT__DATA_DIR": str(root / node_id / "data"),
        "RINGRIFT_ENDPOINTS__JOBS": "127.0.0.1:9", "RINGRIFT_ETCD__ENDPOINTS": f'["{etcd.endpoint}"]',
        "RINGRIFT_METRICS__ENABLED": "false", "RINGRIFT_LOGGING__LEVEL": "WARNING",
    })


def write_random(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    block = os.urandom(1 << 20)
    with path.open("wb") as handle:
        for index in range(size >> 20):
            handle.write(block[index % 7:] + block[:index % 7])  # distinct blocks, cheap to make


async def pull_once(source: ServiceProcess, target: ServiceProcess, target_root: Path, sha: str, size: int) -> float:
    (target_root / PATH).unlink(missing_ok=True)
    request = agent_pb2.PullFileRequest(source_address=source.address, path=PATH, sha256=sha, size_bytes=size,
                                        transfer_id="bench", epoch=1)
    async with grpc.aio.insecure_channel(target.address) as channel:
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
    config.write_text(f"use chroot = no\npid file = {root / 'rsyncd.pid'}\n[data]\n  path = {module_dir}\n  read only = yes\n")
    daemon = subprocess.Popen(["rsync", "--daemon", "--no-detach", f"--config={config}", f"--port={port}",
                               "--address=127.0.0.1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    return daemon, port


def rsync_once(port: int, target: Path) -> float:
    target.unlink(missing_ok=True)
    started = time.perf_counter()
    subprocess.run(["rsync", "--whole-file", f"rsync://127.0.0.1:{port}/data/{PATH}", str(target)], check=True)
    return time.perf_counter() - started


def copy_once(source: Path, target: Path) -> float:
    target.unlink(missing_ok=True)
    started = time.perf_counter()
    shutil.copyfile(source, target)  # no fsync, like the other two
    return time.perf_counter() - started


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if shutil.which("rsync") is None:
        raise SystemExit("bench.transfer needs rsync for its reference: apt-get install rsync")
    size = args.size_mib << 20
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        etcd = EtcdServer(root / "etcd")
        etcd.start()
        source, target = agent(root, etcd, "source"), agent(root, etcd, "target")
        grpc_target = agent(root, etcd, "grpc-target", RINGRIFT_AGENT__FILE_STREAM_PORT="-1")
        for process in (source, target, grpc_target):
            process.start()
        daemon = None
        try:
            source_file = root / "source" / "data" / PATH
            write_random(source_file, size)
            sha = sha256_of(source_file)
            target_root = root / "target" / "data"
            grpc_root = root / "grpc-target" / "data"
            daemon, port = rsync_daemon(root, root / "source" / "data")
            (target_root / "rsync").mkdir(parents=True, exist_ok=True)
            pulls, grpc_pulls, rsyncs, copies = [], [], [], []
            await pull_once(source, target, target_root, sha, size)  # warm-up (hash cache, page cache)
            await pull_once(source, grpc_target, grpc_root, sha, size)
            (grpc_root / PATH).unlink()
            rsync_once(port, target_root / "rsync" / "big.db")
            for _ in range(args.runs):
                # Each run starts with no dirty pages: the previous run's writeback would
                # otherwise land on whichever method runs next.
                os.sync()
                pulls.append(size / await pull_once(source, target, target_root, sha, size) / (1 << 20))
                (target_root / PATH).unlink()
                os.sync()
                grpc_pulls.append(size / await pull_once(source, grpc_target, grpc_root, sha, size) / (1 << 20))
                (grpc_root / PATH).unlink()
                os.sync()
                rsyncs.append(size / rsync_once(port, target_root / "rsync" / "big.db") / (1 << 20))
                (target_root / "rsync" / "big.db").unlink()
                os.sync()
                copies.append(size / copy_once(source_file, target_root / "copy.db") / (1 << 20))
                (target_root / "copy.db").unlink()
        finally:
            if daemon is not None:
                daemon.terminate()
                daemon.wait()
            for process in (grpc_target, target, source):
                process.stop()
            etcd.stop()
    print(table(
        f"Agent-to-agent transfer of {args.size_mib} MiB over loopback (MiB/s, median and range over {args.runs} runs)",
        [
            ("PullFile (target pulls from source, sha256 verified)", median_range(pulls), "rsync daemon: " + median_range(rsyncs)),
            ("PullFile over gRPC only (file_stream_port=-1)", median_range(grpc_pulls), ""),
            ("sha256 of 1 GiB in memory on this CPU (the check's ceiling)", f"{sha256_rate():.0f}", ""),
            ("plain file copy (local limit)", median_range(copies), ""),
        ],
    ))
    print(f"\nmachine: {machine()}")


if __name__ == "__main__":
    asyncio.run(main())
