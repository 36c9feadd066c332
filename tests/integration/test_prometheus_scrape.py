"""A real Prometheus (Debian's) started with the configuration `ringrift up` writes:
every process of the local cluster and etcd become `up` targets through the gateways'
service discovery, the shipped rules load, and named series carry the values the
cluster has (one leader, two ready members)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from ringrift_runtime.local.ports import free_port
from tests.integration.local_up import local_cluster

ALERTS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "alerts.yml"
ALERT_RULES = {
    rule.get("alert") or rule.get("record")
    for group in yaml.safe_load(ALERTS.read_text())["groups"]
    for rule in group["rules"]
}

pytestmark = pytest.mark.integrations

PROCESSES = {"state", "nodes", "sync", "jobs", "selfplay", "training", "gateway-1", "gateway-2", "node-1", "node-2"}


def _get(base: str, path: str, **query: str) -> Any:
    url = f"{base}{path}?{urllib.parse.urlencode(query)}" if query else f"{base}{path}"
    with urllib.request.urlopen(url, timeout=5) as reply:
        body = json.loads(reply.read())
    assert body["status"] == "success", body
    return body["data"]


def _value(base: str, query: str) -> float | None:
    result = _get(base, "/api/v1/query", query=query)["result"]
    return float(result[0]["value"][1]) if result else None


def test_prometheus_scrapes_every_process_of_ringrift_up(tmp_path: Path) -> None:
    prometheus = shutil.which("prometheus")
    assert prometheus, "Prometheus is not installed: scripts/bootstrap.sh --tests installs Debian's prometheus"
    directory = tmp_path / "cluster"
    with local_cluster(directory) as (_, printed):
        config = directory / "prometheus.yml"
        assert f"prometheus --config.file={config}" in printed
        port = free_port()
        server = subprocess.Popen(
            [
                prometheus,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=(tmp_path / "prometheus.log").open("wb"),
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 90
            targets: list[dict[str, Any]] = []
            while time.monotonic() < deadline:
                try:
                    targets = _get(base, "/api/v1/targets", state="active")["activeTargets"]
                except OSError:
                    targets = []
                up = {t["labels"].get("ringrift_instance", t["labels"]["job"]) for t in targets if t["health"] == "up"}
                if up >= PROCESSES | {"etcd"}:
                    break
                time.sleep(1)
            seen = {t["labels"].get("ringrift_instance", t["labels"]["job"]): t["health"] for t in targets}
            assert {name: seen.get(name) for name in PROCESSES | {"etcd"}} == dict.fromkeys(
                PROCESSES | {"etcd"}, "up"
            ), (
                seen,
                (tmp_path / "prometheus.log").read_text()[-2000:],
            )
            assert {t["labels"]["service"] for t in targets} == {
                "state",
                "nodes",
                "sync",
                "jobs",
                "selfplay",
                "training",
                "gateway",
                "agent",
                "etcd",
            }

            rules = [r for g in _get(base, "/api/v1/rules")["groups"] for r in g["rules"]]
            # Every rule of deploy/prometheus/alerts.yml loaded and evaluated without error.
            assert len(rules) == len(ALERT_RULES) and all(r["health"] == "ok" for r in rules), rules
            assert {r["name"] for r in rules} == ALERT_RULES

            # Each series as soon as it has its value (the rules evaluate every 5 s).
            expected = {
                "sum(ringrift_leader_is_leader)": lambda v: v == 1,
                'max(ringrift_cluster_members{state="ready"})': lambda v: v == 2,
                "count(ringrift_process_info)": lambda v: v == len(PROCESSES),
                'sum(grpc_server_handled_total{grpc_service="ringrift.state.v1.StateService"})': lambda v: v > 0,
                "max(etcd_server_quota_backend_bytes)": lambda v: v > 0,
                "count(max by (node) (ringrift_node_disk_used_percent))": lambda v: v == 2,  # from each gateway
                "ringrift:cluster_members:max": lambda v: v == 2,  # the node-lost alert's recording rule
            }
            values: dict[str, float | None] = {}
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                values = {query: _value(base, query) for query in expected}
                if all(v is not None and expected[q](v) for q, v in values.items()):
                    break
                time.sleep(1)
            assert all(v is not None and expected[q](v) for q, v in values.items()), values
        finally:
            server.terminate()
            server.wait(30)
