"""The node agent's settings: identity, data directory, declared capabilities, jobs."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from ringrift_contracts.ids import node_id_problem
from ringrift_runtime.settings import Section

Role = Literal["selfplay", "training", "gauntlet", "export"]
ROLES: tuple[Role, ...] = ("selfplay", "training", "gauntlet", "export")


class GpuDeclaration(Section):
    model: str = ""
    count: int = Field(default=0, ge=0, le=64)
    memory_mb: int = Field(default=0, ge=0)


class AgentSettings(Section):
    """The node agent: identity, data directory and declared capabilities."""

    # Stable node identity (letters, digits, '-', '_'); never an address.
    node_id: str = ""
    data_dir: Path = Path("./ringrift-data")
    roles: list[Role] = Field(default_factory=lambda: list(ROLES))
    labels: dict[str, str] = Field(default_factory=dict)
    # Declared GPUs; nvidia-smi's answer wins when it finds GPUs.
    gpu: GpuDeclaration = GpuDeclaration()
    # Declared overrides of detected resources (0 = detect).
    cpu_cores: int = Field(default=0, ge=0)
    ram_mb: int = Field(default=0, ge=0)
    # Seconds between refreshes of the live metrics in etcd.
    metrics_interval_seconds: float = Field(default=3.0, gt=0)
    detect_gpus: bool = True
    # Job catalog (TOML); None: the built-in catalog (ringrift_agent/templates/default.toml).
    templates_file: Path | None = None
    # Jobs this agent runs at once (0: its CPU cores); dispatch never schedules more.
    job_slots: int = Field(default=0, ge=0, le=4096)
    # Seconds between SIGTERM and SIGKILL when a job's process group is stopped.
    kill_grace_seconds: float = Field(default=5.0, ge=0)
    # Keep one job wrapper started ahead, waiting for the next job: a job then does not
    # wait for an interpreter to start (~10 ms of its start on a small machine).
    standby_wrapper: bool = True
    # The job wrapper: "native" (a small C program built with the package: no interpreter's
    # start per job, ~10 ms of CPU, and ~1 MiB kept waiting instead of ~8) when it was built,
    # else, and with "python", wrapper.py. Both record a job's end the same way.
    job_wrapper: Literal["native", "python"] = "native"
    # A job's RUNNING report is made this long after its start (state.json records it at
    # once): a job that ends sooner is reported once, by its end (one report and one commit
    # instead of two; its STARTING state already says the agent took it).
    running_report_delay_seconds: float = Field(default=0.1, ge=0, le=10)
    # Retention: the work directory of an attempt (its log, state, exit and result files;
    # data files live under data_dir) is deleted this many hours after the attempt ended,
    # checked every work_dir_prune_seconds; its log and status are gone from the agent then.
    work_dir_retention_hours: float = Field(default=72.0, gt=0)
    work_dir_prune_seconds: float = Field(default=3600.0, gt=0)
    # ... and at most this many ended attempts' work directories are kept: past it the
    # oldest go at once, however young (a flood of short jobs cannot fill the disk, nor
    # the agent's memory with their records).
    work_dir_max_ended: int = Field(default=10_000, ge=1)
    # The agent holds the live attempts and this many of the most recently ended ones in
    # memory; an older one is read from its state.json when asked for (memory stays flat
    # however many jobs ran).
    ended_attempts_in_memory: int = Field(default=256, ge=0)
    # Self-fencing: once the node's etcd lease is surely alive for less than this many
    # seconds (capped at a quarter of etcd.lease_ttl_seconds) without a renewal, the
    # agent kills its running jobs and starts none until it has registered again; etcd
    # expires the lease (and the leader retries the jobs elsewhere) only after that.
    self_fence_margin_seconds: float = Field(default=1.0, gt=0)
    # Each job's stdout and stderr logs are capped at this many bytes, checked every
    # job_log_check_seconds while it runs and once when it ends: past the cap the newest
    # half is kept behind a line saying how much was dropped.
    job_log_max_bytes: int = Field(default=64 * 1024 * 1024, ge=4096)
    job_log_check_seconds: float = Field(default=10.0, gt=0)
    # Stop running jobs when the agent shuts down (a local cluster going down); by default
    # they keep running and a restarted agent re-adopts them.
    stop_jobs_on_shutdown: bool = False
    # TCP port of the raw byte stream other agents pull files from (sendfile, opened by a
    # one-use token from OpenFileStream), on server.host: 0 picks a free port; set a
    # fixed one when a firewall sits between nodes. -1 turns it off: this agent neither
    # serves nor uses byte streams, and pulls go over the ReadFile gRPC stream.
    file_stream_port: int = Field(default=0, ge=-1, le=65535)
    # Variables of the agent's environment passed to jobs; nothing else (no secrets).
    job_env_passthrough: list[str] = Field(
        default_factory=lambda: ["PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ", "PYTHONPATH"]
    )

    @field_validator("node_id")
    @classmethod
    def _node_id(cls, value: str) -> str:
        problem = node_id_problem(value) if value else None
        if problem:
            raise ValueError(problem)
        return value
