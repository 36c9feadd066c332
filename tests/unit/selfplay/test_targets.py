"""Jobs per node: hardware tiers, CPU-only nodes, metric adjustments and hybrid targets,
each against a hand-computed case."""

import pytest

from ringrift_selfplay.domain.targets import NodeLoad, hybrid_targets, target_jobs, tier_of

GB = 1024


def gpu(model, count, vram_gb, cores, ram_gb, **metrics):
    return NodeLoad(
        "n",
        gpu_model=model,
        gpu_count=count,
        gpu_memory_mb=vram_gb * GB,
        cpu_cores=cores,
        ram_gb=ram_gb,
        cpu_percent=metrics.get("cpu", 70),
        gpu_percent=metrics.get("gpu", 70),
        gpu_memory_percent=metrics.get("gpu_mem", 50),
        memory_percent=metrics.get("mem", 40),
        disk_percent=metrics.get("disk", 20),
    )


@pytest.mark.parametrize(
    "model, tier",
    [
        ("NVIDIA GH200 480GB", "gh200"),
        ("NVIDIA H100 80GB HBM3", "h100"),
        ("NVIDIA A100-SXM4-80GB", "a100"),
        ("NVIDIA L40S", "a100"),
        ("NVIDIA A10G", "4090"),
        ("NVIDIA GeForce RTX 4090", "4090"),
        ("NVIDIA GeForce RTX 4060 Ti", "4080"),
        ("NVIDIA GeForce RTX 4060", "4070"),
        ("Tesla T4", "other-gpu"),
    ],
)
def test_tiers_match_the_most_specific_pattern(model, tier):
    assert tier_of(model)[0] == tier


@pytest.mark.parametrize(
    "node, expected",
    [
        # A100 x2, 64 cores: min(16*2, 0.4*64 = 25.6, v = 160/2, 16, RAM/2 = 256) = 16
        (gpu("A100", 2, 80, 64, 512), 16),
        # H100 x8, 192 cores: min(192, 96, 320, 16) = 16
        (gpu("H100", 8, 80, 192, 2048), 16),
        # 4090 x1, 32 cores: min(10, 0.35*32*1.0 = 11.2, 12, 8) = 8
        (gpu("RTX 4090", 1, 24, 32, 128), 8),
        # 5090 x2, 128 cores: m = 1.5 -> min(24, 0.3*128*1.5 = 57.6, 32, 24) = 24
        (gpu("RTX 5090", 2, 32, 128, 512), 24),
        # 4070 x1, 16 cores: min(6, 0.25*16 = 4, 6, 4) = 4
        (gpu("RTX 4070", 1, 12, 16, 64), 4),
        # GH200, 72 cores: min(0.8*72 = 57.6, v = 96/2 = 48, 16) = 16
        (gpu("GH200", 1, 96, 72, 480), 16),
        # T4 x1, 8 cores: min(4, 0.2*8 = 1.6, 8, 4) = 1
        (gpu("Tesla T4", 1, 16, 8, 64), 1),
        # RAM caps: A100 x1 with 16 GB RAM: RAM/2 = 8
        (gpu("A100", 1, 80, 64, 16), 8),
    ],
)
def test_gpu_tiers(node, expected):
    assert target_jobs(node, production=False, backpressure=1.0).jobs == expected


@pytest.mark.parametrize(
    "cores, ram, expected", [(32, 256, 9), (64, 256, 25), (128, 1024, 64), (512, 2048, 128), (32, 8, 4)]
)
def test_cpu_only_nodes(cores, ram, expected):
    # c * (0.3 < 64, 0.4 < 128, else 0.5), capped at RAM/2 and 32/64/128
    node = NodeLoad("c", cpu_cores=cores, ram_gb=ram, cpu_percent=70)
    assert target_jobs(node, production=False, backpressure=1.0).jobs == expected


def test_adjustments_in_order():
    base = gpu("A100", 2, 80, 64, 512)
    assert target_jobs(base, False, 1.0).jobs == 16
    hot = gpu("A100", 2, 80, 64, 512, gpu=90)
    assert target_jobs(hot, False, 1.0).jobs == 14
    busy = gpu("A100", 2, 80, 64, 512, gpu=90, cpu=95)
    result = target_jobs(busy, False, 1.0)
    assert result.jobs == 13 and result.adjustments == ["gpu>85%: -2 (floor 2)", "cpu>90%: -1 (floor 2)"]
    idle = gpu("A100", 2, 80, 64, 512, gpu=10, gpu_mem=10, cpu=10)
    assert target_jobs(idle, False, 1.0).jobs == 18
    assert target_jobs(gpu("A100", 2, 80, 64, 512, disk=75), False, 1.0).jobs == 4
    assert target_jobs(gpu("A100", 2, 80, 64, 512, mem=80), False, 1.0).jobs == 2
    assert target_jobs(base, False, 0.5).jobs == 8
    assert target_jobs(gpu("Tesla T4", 1, 16, 4, 64), False, 0.1).jobs == 1  # at least 1
    floor = gpu("RTX 4070", 1, 12, 8, 64, gpu=99)  # min(6, 2, 6, 4) = 2, then -2 floors at 2
    assert target_jobs(floor, False, 1.0).jobs == 2


def test_roles_and_the_production_ram_rule():
    trainer = NodeLoad(
        "t",
        gpu_model="A100",
        gpu_count=1,
        gpu_memory_mb=80 * GB,
        cpu_cores=32,
        ram_gb=256,
        roles=frozenset({"training"}),
    )
    assert target_jobs(trainer, False, 1.0).jobs == 0
    small = gpu("RTX 4090", 1, 24, 16, 32)
    assert target_jobs(small, production=True, backpressure=1.0).jobs == 0
    assert target_jobs(small, production=False, backpressure=1.0).jobs > 0


@pytest.mark.parametrize(
    "cores, ram, gpu_jobs, expected",
    [
        # available = 64 - 12 = 52; min(int(52*0.4) = 20, int((256-16)/1.5) = 160, 32) = 20
        (64, 256, 8, 20),
        # 16 cores: available = 16 - 12 = 4 -> int(4*0.3) = 1
        (16, 64, 8, 1),
        # 256 cores, k 0.6 cap 128: available 256 - 24 = 232 -> 139 -> RAM (512-32)/1.5 = 320 -> cap 128
        (256, 512, 16, 128),
        # RAM-bound: 128 cores (0.5, 64): available 104 -> 52; RAM (64 - 32)/1.5 = 21
        (128, 64, 16, 21),
    ],
)
def test_hybrid_targets(cores, ram, gpu_jobs, expected):
    node = gpu("RTX 4090", 1, 24, cores, ram)
    assert hybrid_targets(node, gpu_jobs) == (gpu_jobs, expected)
    assert hybrid_targets(NodeLoad("c", cpu_cores=cores, ram_gb=ram), 7) == (0, 7)
