"""deploy/prometheus and deploy/grafana are what a Prometheus and a Grafana load: the
configuration and rules pass promtool, every alert fires on its condition and not on a
healthy cluster (alerts_test.yml), the dashboard's queries parse and name only series
something exports, and compose's monitoring profile is wired to the same files."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import yaml

from tests.unit.test_compose import _config

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "ringrift.json"
# Series of other programs the rules and the dashboard may use.
FOREIGN = {"up", "etcd_mvcc_db_total_size_in_bytes", "etcd_server_quota_backend_bytes"}


def _promtool(*args: str, cwd: Path = PROMETHEUS) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not installed: scripts/bootstrap.sh --tests installs Debian's prometheus"
    return subprocess.run([promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def _exported_series() -> set[str]:
    """Metric names the RingRift code registers, with the suffixes Prometheus adds."""
    names: set[str] = set()
    for path in [*ROOT.glob("libs/ringrift_*/**/*.py"), *ROOT.glob("services/*/ringrift_*/**/*.py")]:
        for name in re.findall(r'"((?:ringrift|grpc_server)_[a-z_]+)"', path.read_text()):
            names |= {name, f"{name}_total", f"{name}_bucket", f"{name}_count", f"{name}_sum"}
    return names


def _series_in(expr: str) -> set[str]:
    without_strings = re.sub(r'"[^"]*"', '""', expr)
    return set(re.findall(r"\b((?:ringrift|grpc_server|etcd)_[a-z_]+)\b", without_strings))


def test_configuration_and_rules_pass_promtool() -> None:
    checked = _promtool("check", "config", "prometheus.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "10 rules found" in checked.stdout, checked.stdout


def test_every_alert_fires_on_its_condition_and_not_on_a_healthy_cluster() -> None:
    tested = _promtool("test", "rules", "alerts_test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"] if "alert" in rule}
    assert alerts >= {
        "RingriftLeaderFlapping",
        "RingriftLoopDegraded",
        "RingriftNodeLost",
        "RingriftEtcdNearQuota",
        "RingriftDiskHigh",
        "RingriftGauntletStalled",
    }
    cases = yaml.safe_load((PROMETHEUS / "alerts_test.yml").read_text())["tests"]
    fired = {t["alertname"] for case in cases for t in case["alert_rule_test"] if t["exp_alerts"]}
    assert fired == alerts, alerts - fired  # each alert has a case where it fires


def test_rules_name_only_series_that_are_exported() -> None:
    exported = _exported_series()
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    recorded = {rule["record"] for group in rules["groups"] for rule in group["rules"] if "record" in rule}
    for group in rules["groups"]:
        for rule in group["rules"]:
            unknown = _series_in(rule["expr"]) - exported - FOREIGN - recorded
            assert not unknown, (rule.get("alert") or rule.get("record"), unknown)


def test_dashboard_queries_parse_and_name_exported_series(tmp_path: Path) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(queries) >= 15
    exported = _exported_series()
    for expr in queries:
        assert not (_series_in(expr) - exported - FOREIGN), expr
    # Grafana's variables replaced by values, each query as a recording rule for promtool.
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {
                        "record": f"dashboard:query_{i}",
                        "expr": q.replace("$cluster", "c").replace("$__rate_interval", "5m"),
                    }
                    for i, q in enumerate(queries)
                ],
            }
        ]
    }
    (tmp_path / "queries.yml").write_text(yaml.safe_dump(rules))
    checked = _promtool("check", "rules", "queries.yml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert {p["id"] for p in dashboard["panels"]} == set(range(1, len(dashboard["panels"]) + 1))


def test_the_monitoring_profile_scrapes_what_compose_runs() -> None:
    services = _config("COMPOSE_PROFILES=monitoring")["services"]
    prometheus = services["prometheus"]
    assert any(
        v["source"] == str(PROMETHEUS) and v["target"] == "/etc/prometheus" and v.get("read_only")
        for v in prometheus["volumes"]
    ), prometheus["volumes"]
    assert all(p.get("host_ip") == "127.0.0.1" for p in prometheus["ports"]), prometheus["ports"]
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    sd_hosts = {
        re.match(r"http://([^:/]+):(\d+)/sd/prometheus$", sd["url"]).groups()
        for sd in jobs["ringrift"]["http_sd_configs"]
    }
    gateways = {name for name in services if name.startswith("gateway-")}
    assert {host for host, _ in sd_hosts} == gateways
    assert {int(port) for _, port in sd_hosts} == {51050}  # the gateway's gRPC port + 1000
    members = sorted(name for name in services if name.startswith("etcd-"))
    targets = jobs["etcd"]["static_configs"][0]["targets"]
    assert sorted(target.split(":")[0] for target in targets) == members and len(members) == 3  # every member
    for target in targets:
        host, port = target.split(":")
        assert f"--listen-metrics-urls=http://0.0.0.0:{port}" in services[host]["command"]
    assert "prometheus" not in _config()["services"]  # only with the profile
