"""The gateway's settings: leader election and the leader's background loops."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ringrift_runtime.settings import Section


class GatewaySettings(Section):
    """The gateway: leader election and leader-only work."""

    leader_eligible: bool = True
    # Seconds between the leader's fenced heartbeat writes.
    leader_heartbeat_seconds: float = Field(default=1.0, gt=0)
    # How often the leader asks JobService to dispatch pending jobs.
    # JobDispatcher runs on every JOB_* event and member join; this is its safety round.
    dispatch_interval_seconds: float = Field(default=1.0, gt=0)
    # JobCleanup: terminal jobs to history and old history deleted (JobService's windows).
    cleanup_interval_seconds: float = Field(default=3600.0, gt=0)
    # How often the leader asks JobService to reap lost, stuck and unverified jobs.
    reap_interval_seconds: float = Field(default=30.0, gt=0)
    # The pipeline loops (self-play queue, game counting, training triggers, ratings).
    pipeline_loops: bool = True
    queue_interval_seconds: float = Field(default=60.0, gt=0)
    games_count_interval_seconds: float = Field(default=10.0, gt=0)
    training_trigger_interval_seconds: float = Field(default=60.0, gt=0)
    elo_sync_interval_seconds: float = Field(default=300.0, gt=0)
    # IdleDetection: a node with no jobs (or GPU < 10 %) this long gets work now; GPU < 5 %
    # with jobs for zombie_seconds restarts its self-play jobs; one action per node per cooldown.
    idle_detection_interval_seconds: float = Field(default=10.0, gt=0)
    idle_seconds: float = Field(default=15.0, gt=0)
    zombie_seconds: float = Field(default=600.0, gt=0)
    # GPU utilisation below which a node counts as idle, and as a zombie while it has jobs.
    idle_gpu_percent: float = Field(default=10.0, ge=0, le=100)
    zombie_gpu_percent: float = Field(default=5.0, ge=0, le=100)
    idle_cooldown_seconds: float = Field(default=120.0, ge=0)
    # DataSync: games to trainers and best models to players, every config.
    data_sync_interval_seconds: float = Field(default=60.0, gt=0)
    # Validation: gauntlets against the baselines for promoted models without them.
    validation_interval_seconds: float = Field(default=300.0, gt=0)
    validation_games: int = Field(default=50, ge=1, le=10000)
    validation_per_cycle: int = Field(default=3, ge=0, le=100)
    # AutoScaling through a provider: none (only reports), local (agents as processes on
    # this machine, under autoscaling_local_dir) or command (the operator's scripts).
    autoscaling_interval_seconds: float = Field(default=120.0, gt=0)
    autoscaling_cooldown_seconds: float = Field(default=600.0, ge=0)
    autoscaling_provider: Literal["none", "local", "command"] = "none"
    autoscaling_min_nodes: int = Field(default=1, ge=0)
    autoscaling_max_nodes: int = Field(default=8, ge=1)
    autoscaling_pending_per_node: float = Field(default=10.0, gt=0)
    # Nodes added in one action at most.
    autoscaling_max_add: int = Field(default=3, ge=1)
    autoscaling_idle_seconds: float = Field(default=3600.0, gt=0)
    autoscaling_local_dir: str = ""
    autoscaling_up_command: str = ""
    autoscaling_down_command: str = ""
    # HTTP side port of the gateway also serves the dashboard at / (JSON under /api/),
    # to holders of a viewer token (security.tokens_file), under these Host names only
    # (a defence against DNS rebinding); add the name you browse to it by.
    dashboard: bool = True
    dashboard_hosts: list[str] = Field(default_factory=lambda: ["localhost", "127.0.0.1", "[::1]"])
    # Cluster status is computed at most once per this many seconds (concurrent callers share it).
    status_cache_seconds: float = Field(default=1.0, ge=0)

    @model_validator(mode="after")
    def _scaling_is_complete(self) -> GatewaySettings:
        if self.autoscaling_min_nodes > self.autoscaling_max_nodes:
            raise ValueError("autoscaling_min_nodes must not exceed autoscaling_max_nodes")
        if self.autoscaling_provider == "local" and not self.autoscaling_local_dir:
            raise ValueError("autoscaling_provider=local needs autoscaling_local_dir (where the agents it starts live)")
        if self.autoscaling_provider == "command" and not self.autoscaling_up_command:
            raise ValueError("autoscaling_provider=command needs autoscaling_up_command")
        return self
