"""The gateway's Prometheus service discovery and cluster series, from its etcd views."""

from __future__ import annotations

import json

from prometheus_client import CollectorRegistry, generate_latest

from ringrift.common.v1 import common_pb2
from ringrift_gateway.api.prometheus import ClusterCollector, scrape_targets, sd_route


def _node(node_id: str, metrics: str = "", draining: bool = False, quarantined: bool = False, disk: float = 0.0):
    return common_pb2.NodeInfo(
        node_id=node_id,
        metrics_address=metrics,
        draining=draining,
        quarantined=quarantined,
        metrics=common_pb2.NodeMetrics(disk_percent=disk, running_jobs_by_kind={"selfplay": 2, "gauntlet": 1}),
    )


def test_every_process_with_a_metrics_port_is_a_labelled_target() -> None:
    services = {
        "state/state": common_pb2.ServiceEndpoint(service="state", instance_id="state", metrics_address="h:51051"),
        "gateway/g1": common_pb2.ServiceEndpoint(service="gateway", instance_id="g1", metrics_address="h:51050"),
        "jobs/j": common_pb2.ServiceEndpoint(service="jobs", instance_id="j", metrics_address=""),  # metrics off
    }
    members = {"node-1": _node("node-1", "n1:51060"), "node-2": _node("node-2")}
    groups = scrape_targets("c1", services, members)
    assert groups == [
        {"targets": ["n1:51060"], "labels": {"cluster": "c1", "service": "agent", "ringrift_instance": "node-1"}},
        {"targets": ["h:51050"], "labels": {"cluster": "c1", "service": "gateway", "ringrift_instance": "g1"}},
        {"targets": ["h:51051"], "labels": {"cluster": "c1", "service": "state", "ringrift_instance": "state"}},
    ]
    status, content_type, body = sd_route("c1", lambda: services, lambda: members)({})
    assert status == "200 OK" and content_type == "application/json" and json.loads(body) == groups


def test_cluster_series_count_members_by_state_and_follow_leadership() -> None:
    members = {
        "a": _node("a", disk=93.5),
        "b": _node("b", draining=True),
        "c": _node("c", quarantined=True, draining=True),
        "d": _node("d"),
    }
    leading = {"now": False, "terms": 0}
    registry = CollectorRegistry()
    registry.register(ClusterCollector(lambda: members, lambda: leading["now"], lambda: leading["terms"]))

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert value("ringrift_leader_is_leader") == 0 and value("ringrift_leader_terms_total") == 0
    assert [value("ringrift_cluster_members", state=s) for s in ("ready", "draining", "quarantined")] == [2, 1, 1]
    assert value("ringrift_node_disk_used_percent", node="a") == 93.5
    assert value("ringrift_node_running_jobs", node="d") == 3
    leading.update(now=True, terms=2)
    del members["d"]
    assert value("ringrift_leader_is_leader") == 1 and value("ringrift_leader_terms_total") == 2
    assert value("ringrift_cluster_members", state="ready") == 1
    assert b"# TYPE ringrift_leader_terms_total counter" in generate_latest(registry)
