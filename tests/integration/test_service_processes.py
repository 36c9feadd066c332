"""Every service started as its own process from its console script: SERVING once
ready, its service listed by reflection, RPCs answered, SIGTERM drains and exits 0."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from ringrift_runtime.grpc.contracts import SERVICE_BY_PROCESS
from ringrift_runtime.local.etcd import EtcdServer
from ringrift_runtime.local.processes import ServiceProcess
from ringrift_runtime.security.identity import Identity, agent, gateway, service
from ringrift_runtime.testing.pki import TestPki
from tests.polling import wait_for

GRACE_SECONDS = 3.0


@pytest.fixture(params=sorted(SERVICE_BY_PROCESS))
def service_process(request, tmp_path: Path, etcd: EtcdServer, pki: TestPki):
    env = {
        **pki.env(identity_of(request.param)),
        "RINGRIFT_SERVER__GRACE_SECONDS": str(GRACE_SECONDS),
        "RINGRIFT_METRICS__PORT": "0",
        "RINGRIFT_ETCD__ENDPOINTS": f'["{etcd.endpoint}"]',
        "RINGRIFT_ETCD__CLUSTER_NAME": "test",
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


def test_process_serves_health_reflection_and_stops_on_sigterm(
    service_process: ServiceProcess, etcd: EtcdServer, pki: TestPki
) -> None:
    full_name = SERVICE_BY_PROCESS[service_process.service]
    server = identity_of(service_process.service)
    with pki.sync_channel(service_process.address, server, pki.admin("test")) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for name in ("", full_name):
            reply = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING

        database = ProtoReflectionDescriptorDatabase(channel)
        services = database.get_services()
        assert full_name in services and "grpc.health.v1.Health" in services
        file_proto = database.FindFileContainingSymbol(full_name)
        assert file_proto.package == full_name.rsplit(".", 1)[0]

    # The containers' lean probe: SERVING over the process's own identity; a certificate
    # of another identity is not the server's; half the TLS files is a usage error.
    own = pki.env(server)
    probe = _probe(service_process.address, own)
    assert probe.returncode == 0 and probe.stdout.strip().endswith("SERVING"), probe.stderr
    other = identity_of("jobs" if service_process.service != "jobs" else "nodes")
    assert _probe(service_process.address, pki.env(other)).returncode == 1
    half = {k: v for k, v in own.items() if k != "RINGRIFT_SECURITY__KEY_FILE"}
    refused = _probe(service_process.address, half)
    assert refused.returncode == 2 and "RINGRIFT_SECURITY__KEY_FILE" in refused.stderr

    # Registered in etcd (agents as members, the rest as control-plane services) ...
    key = _registry_key(service_process.service)
    assert wait_for(lambda: _etcd_get(etcd, key) != "", 10), f"{key} not registered"

    started = time.monotonic()
    service_process.signal(signal.SIGTERM)
    assert service_process.wait(timeout=GRACE_SECONDS + 5) == 0
    assert time.monotonic() - started < GRACE_SECONDS + 5
    assert not service_process.ready_file.exists()
    # ... and gone at once after a graceful stop (lease revoked, not expired).
    assert _etcd_get(etcd, key) == ""


def _probe(address: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "ringrift_cli.probe", address]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=30)


def _registry_key(service: str) -> str:
    if service == "agent":
        return "/ringrift/test/nodes/node-1"
    return f"/ringrift/test/services/{service}/{service}-1"


def _etcd_get(etcd: EtcdServer, key: str) -> str:
    return etcd.etcdctl("get", key, "--print-value-only").stdout.decode(errors="replace").strip()


def identity_of(process: str) -> Identity:
    if process == "gateway":
        return gateway("gateway-1", "test")
    if process == "agent":
        return agent("node-1", "test")
    return service(process, "test")


def test_unknown_setting_stops_the_process_with_a_clear_message(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "ringrift-jobs"
    result = subprocess.run(
        [str(script)],
        env={"RINGRIFT_SERVER__PROT": "1", "RINGRIFT_ETCD__REGISTER_SERVICE": "false"},
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
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
                "RINGRIFT_SECURITY__INSECURE": "true",
            },
            capture_output=True,
            text=True,
            timeout=30,
            cwd=tmp_path,
        )
    assert result.returncode == 1
    assert f"127.0.0.1:{port}" in result.stderr


def _start_nodes_service(tmp_path: Path, extra: dict[str, str]) -> subprocess.CompletedProcess:
    """Run ringrift-nodes on a free port with ``extra`` settings, without etcd; its exit."""
    script = Path(sys.executable).parent / "ringrift-nodes"
    env = {
        **extra,
        "RINGRIFT_SERVER__PORT": "0",
        "RINGRIFT_METRICS__ENABLED": "false",
        "RINGRIFT_ETCD__REGISTER_SERVICE": "false",
    }
    return subprocess.run([str(script)], env=env, capture_output=True, text=True, timeout=30, cwd=tmp_path)


def test_without_certificates_a_process_refuses_to_start_and_says_what_to_do(tmp_path: Path) -> None:
    """Mutual TLS is the default: nothing listens in plaintext unless a setting says so."""
    result = _start_nodes_service(tmp_path, {})
    assert result.returncode == 2
    assert "mutual TLS needs security.ca_file" in result.stderr and "RINGRIFT_SECURITY__INSECURE=true" in result.stderr


def test_a_certificate_of_another_identity_is_refused_at_start(tmp_path: Path, pki: TestPki) -> None:
    result = _start_nodes_service(tmp_path, pki.env(service("jobs", "test")))
    assert result.returncode == 2 and "is service:jobs, not service:nodes" in result.stderr
