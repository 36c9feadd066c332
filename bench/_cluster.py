"""A real local cluster for the benchmarks, started as `ringrift up` starts it (etcd,
StateService, six managers, two gateways, three agents, mutual TLS everywhere), and an
administrator's channel to its gateway."""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc

from ringrift.orchestrator.v1 import orchestrator_pb2 as O
from ringrift.orchestrator.v1 import orchestrator_pb2_grpc
from ringrift_cli.local_cluster import LocalCluster, admin_of
from ringrift_runtime.security.directory import CertificateDirectory
from ringrift_runtime.security.identity import any_gateway
from ringrift_runtime.security.tls import channel_credentials

# The pipeline's loops off: the agents stay idle unless a benchmark gives them work.
IDLE = {"RINGRIFT_GATEWAY__PIPELINE_LOOPS": "false"}


@contextmanager
def local_cluster(env: dict[str, str] | None = None) -> Iterator[LocalCluster]:
    with tempfile.TemporaryDirectory(prefix="ringrift-bench-") as root:
        cluster = LocalCluster(Path(root), settings_env=dict(IDLE if env is None else env))
        try:
            cluster.up(lambda step: None)
            yield cluster
        finally:
            cluster.down()


def gateway_channel(cluster: LocalCluster) -> grpc.aio.Channel:
    return admin_channel(cluster.gateway_address, str(cluster.certs.path), cluster.cluster_name)


def admin_channel(address: str, certs: str, cluster_name: str) -> grpc.aio.Channel:
    """The administrator's channel to a gateway, from plain values (for another process)."""
    files = CertificateDirectory(Path(certs)).files(admin_of(cluster_name))
    options = [("grpc.ssl_target_name_override", any_gateway(cluster_name))]
    return grpc.aio.secure_channel(address, channel_credentials(files), options=options)


async def wait_ready(gateway: orchestrator_pb2_grpc.OrchestratorServiceStub, agents: int, timeout: float = 60) -> None:
    """A leader with its loops and every agent a member."""
    deadline = time.monotonic() + timeout
    while True:
        status = await gateway.GetClusterStatus(O.GetClusterStatusRequest(), timeout=10)
        if status.leader_id and len(status.nodes) >= agents and status.loops:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"the local cluster did not come up within {timeout:.0f} s")
        await asyncio.sleep(0.5)
