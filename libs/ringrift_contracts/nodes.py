"""Facts about a node that several services derive the same way from its NodeInfo."""

from __future__ import annotations

from typing import Any, Protocol


class _Gpu(Protocol):
    model: str
    count: int
    memory_mb: int


def effective_gpu(node: Any) -> _Gpu:
    """The GPUs a node has: what it detected (nvidia-smi) when it detected any, else what
    its operator declared. ``node`` is a ``ringrift.common.v1.NodeInfo``."""
    detected: _Gpu = node.detected.gpu
    declared: _Gpu = node.declared.gpu
    return detected if detected.count else declared


def detected_gpu_count(node: Any) -> int:
    """GPUs the node's own probe found: only those report utilisation (a declared GPU the
    machine lacks reads as idle forever)."""
    return int(node.detected.gpu.count)


def gpu_count(node: Any) -> int:
    return int(effective_gpu(node).count)


def takes_selfplay(node: Any) -> bool:
    """Neither draining nor quarantined, and it runs selfplay jobs (an agent that lists
    no job kinds runs any)."""
    return not (node.draining or node.quarantined) and (not node.job_kinds or "selfplay" in node.job_kinds)


def cpu_cores(node: Any) -> int:
    """Declared cores override detection (an operator may reserve some); at least 1."""
    return int(node.declared.cpu_cores or node.detected.cpu_cores or 1)


def ram_mb(node: Any) -> int:
    """Declared RAM overrides detection."""
    return int(node.declared.ram_mb or node.detected.ram_mb)
