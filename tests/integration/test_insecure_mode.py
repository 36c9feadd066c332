"""Security off is a setting, said loudly: a cluster started with security.insecure runs in
plaintext (etcd too), every process warns at start, and `ringrift status` shows it."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from ringrift_client import AsyncClient
from ringrift_runtime.local.etcd import EtcdServer
from ringrift_runtime.local.processes import ServiceProcess

RINGRIFT = str(Path(sys.executable).parent / "ringrift")


async def test_an_insecure_cluster_says_so_at_start_and_in_status(tmp_path: Path) -> None:
    etcd = EtcdServer(tmp_path / "etcd")  # plaintext etcd, as an insecure cluster uses
    await asyncio.to_thread(etcd.start)
    processes: list[ServiceProcess] = []
    try:
        base = {
            "RINGRIFT_SECURITY__INSECURE": "true",
            "RINGRIFT_ETCD__ENDPOINTS": f'["{etcd.endpoint}"]',
            "RINGRIFT_ETCD__CLUSTER_NAME": "open",
            "RINGRIFT_METRICS__ENABLED": "false",
        }
        state = ServiceProcess(
            "state",
            tmp_path / "state",
            env={**base, "RINGRIFT_STATE__DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'state.db'}"},
        )
        processes.append(state)
        await asyncio.to_thread(state.start)
        gateway = ServiceProcess(
            "gateway",
            tmp_path / "gw",
            env={**base, "RINGRIFT_ENDPOINTS__STATE": state.address, "RINGRIFT_INSTANCE_ID": "gw"},
        )
        processes.append(gateway)
        await asyncio.to_thread(gateway.start)
        async with AsyncClient.connect(gateway.address, insecure=True) as client:
            status = await client.get_cluster_status(timeout=10)
        assert status.insecure and status.replica_id == "gw"
        shown = await asyncio.to_thread(
            subprocess.run,
            [RINGRIFT, "--insecure", "status", "--gateway", gateway.address],
            capture_output=True,
            text=True,
            timeout=60,
            env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
        )
        assert shown.returncode == 0, shown.stderr
        assert "SECURITY IS OFF on gw" in shown.stdout
        for process in processes:
            log = await asyncio.to_thread(process.log_path.read_text)
            assert "SECURITY IS OFF (security.insecure=true)" in log, process.service
    finally:
        for process in processes:
            await asyncio.to_thread(process.stop)
        await asyncio.to_thread(etcd.stop)
