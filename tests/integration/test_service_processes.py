"""Every service started as its own process from its console script: SERVING once
ready, its service listed by reflection, RPCs answered, SIGTERM drains and exits 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from ringrift_runtime.grpc.contracts import SERVICE_BY_PROCESS
from ringrift_runtime.local.etcd import EtcdServer
from ringrift_runtime.local.processes import ServiceProcess

GRACE_SECONDS = 3.0


@pytest.fixture(params=sorted(SERVICE_BY_PROCESS))
def service_process(request, tmp_path: Path, etcd: EtcdServer):
    env = {
        "RINGRIFT_SERVER__GRACE_SECONDS": str(GRACE_SECONDS),
        "RINGRIFT_METRICS__PORT": "0",
        "RINGRIFT_ETCD__ENDPOINTS": f'["{etcd.endpoint}"]',
        "RINGRIFT_ETCD__CLUSTER_NAME": "procs",
        "RINGRIFT_INSTANCE_ID": f"{request.param}-1",
        "RINGRIFT_STATE__DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'state.db'}",
    }
    if request.param == "agent":
        env.update({"RINGRIFT_AGENT__NODE_ID": "node-1", "RINGRIFT_AGENT__DATA_DIR": str(tmp_path / "data")})
    process = ServiceProcess(request.param, tmp_path, env=env)
    process.start()
    try:
        yield process
    finally:
        process.stop()


def test_process_serves_health_reflection_and_stops_on_sigterm(service_process: ServiceProcess, etcd: EtcdServer) -> None:
    full_name = SERVICE_BY_PROCESS[service_process.service]
    with grpc.insecure_channel(service_process.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for name in ("", full_name):
            reply = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING

        database = ProtoReflectionDescriptorDatabase(channel)
        services = database.get_services()
        assert full_name in services and "grpc.health.v1.Health" in services
        file_proto = database.FindFileContainingSymbol(full_name)
        assert file_proto.package == full_name.rsplit(".", 1)[0]

    # Registered in etcd (agents as members, the rest as control-plane services) ...
    key = _registry_key(service_process.service)
    assert _wait_for(lambda: _etcd_get(etcd, key) != "", 10), f"{key} not registered"

    started = time.monotonic()
    service_process.signal(signal.SIGTERM)
    assert service_process.wait(timeout=GRACE_SECONDS + 5) == 0
    assert time.monotonic() - started < GRACE_SECONDS + 5
    assert not service_process.ready_file.exists()
    # ... and gone at once after a graceful stop (lease revoked, not expired).
    assert _etcd_get(etcd, key) == ""


def _registry_key(service: str) -> str:
    if service == "agent":
        return "/ringrift/procs/nodes/node-1"
    return f"/ringrift/procs/services/{service}/{service}-1"


def _etcd_get(etcd: EtcdServer, key: str) -> str:
    result = subprocess.run(
        ["etcdctl", "--endpoints", etcd.endpoint, "get", key, "--print-value-only"],
        env={**os.environ, "ETCDCTL_API": "3"},
        capture_output=True,
        timeout=10,
        check=True,
    )
    return result.stdout.decode(errors="replace").strip()


def _wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_unknown_setting_stops_the_process_with_a_clear_message(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "ringrift-jobs"
    result = subprocess.run(
        [str(script)], env={"RINGRIFT_SERVER__PROT": "1", "RINGRIFT_ETCD__REGISTER_SERVICE": "false"}, capture_output=True, text=True, timeout=30, cwd=tmp_path
    )
    assert result.returncode == 2
    assert "unknown setting RINGRIFT_SERVER__PROT (did you mean RINGRIFT_SERVER__PORT?)" in result.stderr


def test_busy_port_fails_fast(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        script = Path(sys.executable).parent / "ringrift-nodes"
        result = subprocess.run(
            [str(script)],
            env={
                "RINGRIFT_SERVER__PORT": str(port),
                "RINGRIFT_METRICS__ENABLED": "false",
                "RINGRIFT_ETCD__REGISTER_SERVICE": "false",
            },
            capture_output=True,
            text=True,
            timeout=30,
            cwd=tmp_path,
        )
    assert result.returncode == 1
    assert f"127.0.0.1:{port}" in result.stderr
