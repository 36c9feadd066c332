"""A real local cluster for the benchmarks, started as `ringrift up` starts it (etcd,
StateService, six managers, two gateways, three agents, mutual TLS everywhere), and the
administrator's ringrift_client at its gateway."""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ringrift_cli.local_cluster import LocalCluster
from ringrift_client import AsyncClient

# The pipeline's loops off: the agents stay idle unless a benchmark gives them work.
IDLE = {"RINGRIFT_GATEWAY__PIPELINE_LOOPS": "false"}


@contextmanager
def local_cluster(env: dict[str, str] | None = None, agents: int = 3, cohost: bool = False) -> Iterator[LocalCluster]:
    with tempfile.TemporaryDirectory(prefix="ringrift-bench-") as root:
        cluster = LocalCluster(
            Path(root), agents=agents, settings_env=dict(IDLE if env is None else env), cohost=cohost
        )
        try:
            cluster.up(lambda step: None)
            yield cluster
        finally:
            cluster.down()


def cluster_pids(cluster: LocalCluster) -> dict[str, int | None]:
    """The PID of each process of the cluster by name (etcd and every service process;
    None for one that is not running)."""
    pids = {"etcd": cluster.etcd.pid if cluster.etcd else None}
    pids.update({name: p.process.pid if p.process else None for name, p in cluster.processes})
    return pids


def gateway_client(cluster: LocalCluster) -> AsyncClient:
    """The administrator's ringrift_client at the first gateway (inside the event loop)."""
    return AsyncClient(cluster.client_context())


def admin_client(config: str) -> AsyncClient:
    """The same from the cluster's client.toml (for another process)."""
    return AsyncClient.connect(config=config)


async def wait_ready(gateway: AsyncClient, agents: int, timeout: float = 60) -> None:
    """A leader with its loops and every agent a member."""
    deadline = time.monotonic() + timeout
    while True:
        status = await gateway.get_cluster_status(timeout=10)
        if status.leader_id and len(status.nodes) >= agents and status.loops:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"the local cluster did not come up within {timeout:.0f} s")
        await asyncio.sleep(0.5)
