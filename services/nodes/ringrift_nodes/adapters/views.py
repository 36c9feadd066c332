"""NodeInfo (etcd membership) -> NodeView (selector facts)."""

from __future__ import annotations

from ringrift.common.v1 import common_pb2
from ringrift_contracts.nodes import cpu_cores, effective_gpu, ram_mb
from ringrift_contracts.tables import role_names
from ringrift_nodes.domain.model import NodeView


def node_view(node: common_pb2.NodeInfo) -> NodeView:
    """The node's hardware as ringrift_contracts.nodes reads it, and its load."""
    gpu = effective_gpu(node)
    jobs = node.metrics.running_jobs_by_kind
    return NodeView(
        node_id=node.node_id,
        gpu_model=gpu.model,
        gpu_count=gpu.count,
        gpu_memory_mb=gpu.memory_mb,
        cpu_cores=cpu_cores(node),
        ram_mb=ram_mb(node),
        free_ram_mb=node.metrics.free_ram_mb,
        roles=role_names(node),
        labels=dict(node.declared.labels),
        draining=node.draining,
        quarantined=node.quarantined,
        cpu_percent=node.metrics.cpu_percent,
        memory_percent=node.metrics.memory_percent,
        disk_percent=node.metrics.disk_percent,
        gpu_percent=node.metrics.gpu_utilization_percent,
        selfplay_jobs=jobs.get("selfplay", 0),
        training_jobs=jobs.get("train", 0) + jobs.get("training", 0),
        job_kinds=frozenset(node.job_kinds),
    )
