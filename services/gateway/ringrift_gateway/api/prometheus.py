"""What the gateway tells Prometheus: where to scrape (an HTTP service-discovery route
over the etcd views, so agents that join or leave are followed without editing a file)
and the cluster-level series only a gateway sees (leadership, members, node load).

The discovery route sits beside /metrics, outside the dashboard's token check: it lists
only the metrics addresses, which are open for scraping anyway
(deploy/prometheus/prometheus.yml uses it)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ringrift.common.v1 import common_pb2

SD_PATH = "/sd/prometheus"


def scrape_targets(
    cluster: str,
    services: dict[str, common_pb2.ServiceEndpoint],
    members: dict[str, common_pb2.NodeInfo],
) -> list[dict[str, Any]]:
    """Prometheus HTTP SD target groups: one per process with a metrics port, labelled
    with its cluster, service and instance (agents: service "agent", instance = node id)."""
    groups = []
    for endpoint in services.values():
        if endpoint.metrics_address:
            labels = {"cluster": cluster, "service": endpoint.service, "ringrift_instance": endpoint.instance_id}
            groups.append({"targets": [endpoint.metrics_address], "labels": labels})
    for node_id, node in members.items():
        if node.metrics_address:
            labels = {"cluster": cluster, "service": "agent", "ringrift_instance": node_id}
            groups.append({"targets": [node.metrics_address], "labels": labels})
    return sorted(groups, key=lambda g: (g["labels"]["service"], g["labels"]["ringrift_instance"]))


def sd_route(
    cluster: str,
    services: Callable[[], dict[str, common_pb2.ServiceEndpoint]],
    members: Callable[[], dict[str, common_pb2.NodeInfo]],
) -> Callable[[dict[str, Any]], tuple[str, str, bytes]]:
    def route(environ: dict[str, Any]) -> tuple[str, str, bytes]:
        body = json.dumps(scrape_targets(cluster, dict(services()), dict(members())))
        return "200 OK", "application/json", body.encode()

    return route


class ClusterCollector(Collector):
    """Series read from this replica's views when scraped: nothing is kept twice."""

    def __init__(
        self,
        members: Callable[[], dict[str, common_pb2.NodeInfo]],
        is_leader: Callable[[], bool],
        terms: Callable[[], int],
    ) -> None:
        self._members, self._is_leader, self._terms = members, is_leader, terms

    def collect(self) -> Iterator[Metric]:
        leader = GaugeMetricFamily("ringrift_leader_is_leader", "1 while this gateway replica leads the cluster.")
        leader.add_metric([], 1.0 if self._is_leader() else 0.0)
        yield leader
        terms = CounterMetricFamily(
            "ringrift_leader_terms", "Leadership terms this gateway replica has begun since it started."
        )
        terms.add_metric([], float(self._terms()))
        yield terms
        nodes = dict(self._members())
        counts = {"ready": 0, "draining": 0, "quarantined": 0}
        for node in nodes.values():
            counts["quarantined" if node.quarantined else "draining" if node.draining else "ready"] += 1
        members = GaugeMetricFamily(
            "ringrift_cluster_members", "Cluster members registered in etcd, by state.", labels=["state"]
        )
        for state, count in counts.items():
            members.add_metric([state], float(count))
        yield members
        per_node = {
            "ringrift_node_disk_used_percent": ("Disk in use on the node's data file system, 0..100.", "disk_percent"),
            "ringrift_node_cpu_used_percent": ("CPU utilisation of the node, 0..100.", "cpu_percent"),
            "ringrift_node_memory_used_percent": ("Memory in use on the node, 0..100.", "memory_percent"),
        }
        for name, (help_text, field) in per_node.items():
            family = GaugeMetricFamily(name, help_text, labels=["node"])
            for node_id, node in nodes.items():
                family.add_metric([node_id], float(getattr(node.metrics, field)))
            yield family
        running = GaugeMetricFamily("ringrift_node_running_jobs", "Jobs running on the node.", labels=["node"])
        for node_id, node in nodes.items():
            running.add_metric([node_id], float(sum(node.metrics.running_jobs_by_kind.values())))
        yield running
