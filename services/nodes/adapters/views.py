"""NodeInfo (etcd membership) -> NodeView (selector facts)."""

from __future__ import annotations

from ringrift.common.v1 import common_pb2
from ringrift_nodes.domain.model import NodeView
from ringrift_runtime.grpc.roles import role_names


def node_view(node: common_pb2.NodeInfo) -> NodeView:
    """Detected GPUs win over declared ones; declared cores and RAM override detection."""
    gpu = node.detected.gpu if node.detected.gpu.count else node.declared.gpu
    jobs = node.metrics.running_jobs_by_kind
    return NodeView(
        node_id=node.node_id,
        gpu_model=gpu.model,
        gpu_count=gpu.count,
        gpu_memory_mb=gpu.memory_mb,
        cpu_cores=node.declared.cpu_cores or node.detected.cpu_cores or 1,
        ram_mb=node.declared.ram_mb or node.detected.ram_mb,
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
