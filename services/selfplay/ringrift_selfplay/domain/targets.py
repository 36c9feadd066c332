"""How many self-play jobs a node should hold (BEHAVIOUR.md, SelfplayScheduler): a
hardware tier gives the base, live metrics adjust it, hybrid nodes add CPU-only jobs."""

from __future__ import annotations

from dataclasses import dataclass, field

# (patterns, tier name, per-GPU factor or None, core factor, uses core multiplier, cap).
# Most specific first: "A100" before "A10", "4060 TI" before "4060".
TIERS: list[tuple[tuple[str, ...], str, float | None, float, bool, int]] = [
    (("GH200",), "gh200", None, 0.8, False, 16),
    (("H100", "H200"), "h100", 24, 0.5, False, 16),
    (("A100", "L40"), "a100", 16, 0.4, False, 16),
    (("5090",), "5090", 12, 0.3, True, 24),
    (("A10", "4090", "3090"), "4090", 10, 0.35, True, 8),
    (("4080", "4060 TI", "4060TI"), "4080", 8, 0.3, True, 8),
    (("4070", "3080", "4060"), "4070", 6, 0.25, True, 4),
]
OTHER_GPU = ("other-gpu", 4, 0.2, True, 4)


@dataclass(frozen=True)
class NodeLoad:
    node_id: str
    gpu_model: str = ""
    gpu_count: int = 0
    gpu_memory_mb: int = 0  # per GPU
    cpu_cores: int = 1
    ram_gb: float = 0.0
    roles: frozenset[str] = frozenset({"selfplay"})
    cpu_percent: float = 0.0
    memory_percent: float = 0.0
    disk_percent: float = 0.0
    gpu_percent: float = 0.0
    gpu_memory_percent: float = 0.0


@dataclass
class Target:
    jobs: int
    tier: str
    adjustments: list[str] = field(default_factory=list)


def core_multiplier(cores: int) -> float:
    return 2.0 if cores >= 256 else 1.5 if cores >= 128 else 1.25 if cores >= 64 else 1.0


def tier_of(gpu_model: str) -> tuple[str, float | None, float, bool, int]:
    upper = gpu_model.upper()
    for patterns, name, per_gpu, core, multiplied, cap in TIERS:
        if any(p in upper for p in patterns):
            return name, per_gpu, core, multiplied, cap
    return OTHER_GPU


def base_target(node: NodeLoad) -> Target:
    c = node.cpu_cores
    ram_cap = node.ram_gb / 2
    if node.gpu_count > 0:
        name, per_gpu, core, multiplied, cap = tier_of(node.gpu_model)
        g = node.gpu_count
        v = node.gpu_memory_mb * g / 1024 / 2
        cores = core * c * (core_multiplier(c) if multiplied else 1.0)
        limits = [cores, v, cap, ram_cap] + ([per_gpu * g] if per_gpu is not None else [])
        return Target(int(min(limits)), name)
    factor = 0.3 if c < 64 else 0.4 if c < 128 else 0.5
    cap = 32 if c < 64 else 64 if c < 128 else 128
    return Target(int(min(c * factor, ram_cap, cap)), "cpu")


def target_jobs(node: NodeLoad, production: bool, backpressure: float) -> Target:
    if "selfplay" not in node.roles:
        return Target(0, "none", ["no selfplay role: 0"])
    if production and node.ram_gb < 64:
        return Target(0, "none", [f"RAM {node.ram_gb:.0f} GB < 64 GB (production): 0"])
    target = base_target(node)
    jobs = target.jobs
    notes = target.adjustments
    if node.gpu_percent > 85 or node.gpu_memory_percent > 85:
        jobs = max(2, jobs - 2)
        notes.append("gpu>85%: -2 (floor 2)")
    if node.cpu_percent > 90:
        jobs = max(2, jobs - 1)
        notes.append("cpu>90%: -1 (floor 2)")
    if node.gpu_percent < 60 and node.gpu_memory_percent < 75 and node.cpu_percent < 60:
        jobs += 2
        notes.append("idle (gpu<60%, gpu mem<75%, cpu<60%): +2")
    if node.disk_percent >= 70 and jobs > 4:
        jobs = 4
        notes.append("disk>=70%: cap 4")
    if node.memory_percent >= 75 and jobs > 2:
        jobs = 2
        notes.append("memory>=75%: cap 2")
    if backpressure < 1:
        jobs = int(jobs * backpressure)
        notes.append(f"backpressure x{backpressure:g}")
    if jobs < 1:
        jobs = 1
        notes.append("at least 1")
    target.jobs = jobs
    return target


def hybrid_targets(node: NodeLoad, gpu_jobs: int) -> tuple[int, int]:
    """(GPU jobs, extra CPU-only jobs) of a node with GPUs and many cores."""
    if node.gpu_count == 0:
        return 0, gpu_jobs
    c = node.cpu_cores
    k, cap = (0.3, 8) if c < 32 else (0.4, 32) if c < 128 else (0.5, 64) if c < 256 else (0.6, 128)
    available = c - int(1.5 * gpu_jobs)
    cpu_only = min(int(available * k), int((node.ram_gb - 2 * gpu_jobs) / 1.5), cap)
    return gpu_jobs, max(0, cpu_only)
