"""NodeSelector's placement rules (BEHAVIOUR.md, NodeSelector)."""

from __future__ import annotations

from pydantic import Field, field_validator

from ringrift_runtime.settings import Section

DEFAULT_GPU_POWER: list[tuple[str, float]] = [
    # Most specific first: the first pattern contained in the (upper-cased) model wins.
    ("GH200", 2500),
    ("H200", 2500),
    ("H100", 2000),
    ("A100", 624),
    ("5090", 419),
    ("L40", 362),
    ("4090", 330),
    ("5080", 300),
    ("A10G", 250),
    ("A10", 250),
    ("4080", 242),
    ("5070", 200),
    ("4070", 184),
    ("3090", 142),
    ("V100", 125),
    ("4060", 120),
    ("3080", 119),
    ("3070", 81),
    ("3060", 51),
    ("APPLE M3", 30),
    ("APPLE M2", 25),
    ("APPLE M1", 20),
]


class NodeSelectorSettings(Section):
    """Placement rules (BEHAVIOUR.md, NodeSelector)."""

    gpu_power: list[tuple[str, float]] = Field(default_factory=lambda: list(DEFAULT_GPU_POWER))
    unknown_gpu_power: float = 10.0
    # GPUs not given GPU tree-search work ("20" matches the whole 20xx series).
    weak_gpu_patterns: list[str] = Field(default_factory=lambda: ["3060", "4060", "RTX 20", "1080", "1070", "1660"])
    disk_limit_percent: float = Field(default=70.0, gt=0, le=100)
    memory_limit_percent: float = Field(default=75.0, gt=0, le=100)
    system_reserve_gb: float = Field(default=4.0, ge=0)
    # RAM a job needs when it does not declare one, by estimate class.
    ram_estimate_gb: dict[str, float] = Field(
        default_factory=lambda: {
            "selfplay_gpu": 8.0,
            "selfplay_policy": 6.0,
            "selfplay_heuristic": 2.0,
            "selfplay_search": 4.0,
            "training": 16.0,
            "evaluation": 4.0,
            "default": 4.0,
        }
    )
    # Multiplies the ranking power of a node that already holds the job's input data.
    locality_factor: float = Field(default=1.25, ge=1)
    max_top_k: int = Field(default=1000, ge=1)
    # Longest reservation a caller may ask for.
    max_reservation_seconds: int = Field(default=7200, ge=1)
    # How long a quarantine lasts when the caller does not say (it ends by itself: its
    # etcd key's lease expires), and the longest one a caller may ask for.
    quarantine_seconds: int = Field(default=86400, ge=60)
    max_quarantine_seconds: int = Field(default=30 * 86400, ge=60)

    @field_validator("ram_estimate_gb")
    @classmethod
    def _has_default(cls, value: dict[str, float]) -> dict[str, float]:
        if "default" not in value:
            raise ValueError("needs a 'default' entry")
        return value
