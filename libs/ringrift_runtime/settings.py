"""Typed settings: the one place for every default.

Each process builds its settings once at start from, in rising precedence, the defaults
below, an optional TOML file (``--config PATH`` or ``RINGRIFT_CONFIG``), ``RINGRIFT_*``
environment variables (nested with ``__``, e.g. ``RINGRIFT_SERVER__PORT=6000``) and
explicit overrides. Unknown keys, unknown ``RINGRIFT_*`` variables, malformed values and
unreadable files are errors with a message naming the setting; there is no silent
fallback to defaults. This is the only module that reads the environment.
"""

from __future__ import annotations

import json

import difflib
import os
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from ringrift_runtime.pipeline_settings import PipelineSettings, SelfplaySettings, SyncSettings, TrainingSettings

ENV_PREFIX = "RINGRIFT_"
ENV_NESTED_DELIMITER = "__"
CONFIG_FILE_ENV = "RINGRIFT_CONFIG"

# The control-plane services and their default gRPC ports.
SERVICE_NAMES = ("state", "nodes", "sync", "jobs", "selfplay", "training", "gateway", "agent")
DEFAULT_PORTS = {
    "gateway": 50050,
    "state": 50051,
    "nodes": 50052,
    "sync": 50053,
    "jobs": 50054,
    "selfplay": 50055,
    "training": 50056,
    "agent": 50060,
}
METRICS_PORT_OFFSET = 1000


class SettingsError(Exception):
    """Settings could not be loaded; the message says which setting and why."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSettings(_Section):
    """The process's own gRPC server."""

    host: str = "127.0.0.1"
    # Host others use to reach this process (registries); empty: server.host, or the
    # machine's host name when server.host is a wildcard (0.0.0.0, ::).
    advertise_host: str = ""
    # None: the service's default port (DEFAULT_PORTS); 0: any free port.
    port: int | None = Field(default=None, ge=0, le=65535)
    # Seconds to drain in-flight calls after SIGTERM/SIGINT before cancelling them.
    grace_seconds: float = Field(default=5.0, gt=0, le=300)
    # When set, a JSON file {"grpc_port", "metrics_port", "pid"} is written once serving.
    ready_file: Path | None = None
    max_receive_message_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    max_concurrent_rpcs: int | None = Field(default=None, ge=1)


class MetricsSettings(_Section):
    """The HTTP side port with /metrics and /healthz."""

    enabled: bool = True
    host: str = "127.0.0.1"
    # None: the gRPC port + 1000 (any free port when the gRPC port is chosen freely).
    port: int | None = Field(default=None, ge=0, le=65535)


class LoggingSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = "text"
    # Log one access line per health/reflection call too (noisy; off by default).
    log_health_checks: bool = False


class EndpointSettings(_Section):
    """Where clients find each control-plane service (host:port)."""

    gateway: str = f"127.0.0.1:{DEFAULT_PORTS['gateway']}"
    state: str = f"127.0.0.1:{DEFAULT_PORTS['state']}"
    nodes: str = f"127.0.0.1:{DEFAULT_PORTS['nodes']}"
    sync: str = f"127.0.0.1:{DEFAULT_PORTS['sync']}"
    jobs: str = f"127.0.0.1:{DEFAULT_PORTS['jobs']}"
    selfplay: str = f"127.0.0.1:{DEFAULT_PORTS['selfplay']}"
    training: str = f"127.0.0.1:{DEFAULT_PORTS['training']}"

    @field_validator("*")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"expected host:port, got {value!r}")
        return value


class ClientSettings(_Section):
    """Outbound gRPC calls: deadlines, retries, keepalive."""

    # Deadline of every unary call that does not set one.
    deadline_seconds: float = Field(default=10.0, gt=0)
    # Deadline of server-streaming calls (watches reconnect after it).
    stream_deadline_seconds: float = Field(default=3600.0, gt=0)
    # Per-method deadlines, keyed "package.Service/Method".
    method_deadlines: dict[str, float] = Field(default_factory=dict)
    # Retries of UNAVAILABLE on idempotent methods (attempts include the first).
    retry_max_attempts: int = Field(default=4, ge=1, le=5)
    retry_initial_backoff_seconds: float = Field(default=0.2, gt=0)
    retry_max_backoff_seconds: float = Field(default=2.0, gt=0)
    retry_backoff_multiplier: float = Field(default=2.0, ge=1)
    keepalive_time_ms: int = Field(default=20_000, ge=1000)
    keepalive_timeout_ms: int = Field(default=10_000, ge=1000)


class EtcdSettings(_Section):
    """Membership, service registry and leader election."""

    endpoints: list[str] = Field(default_factory=lambda: ["127.0.0.1:2379"], min_length=1)
    cluster_name: str = Field(default="default", pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    # Lease TTL of agents and services (kept alive every TTL/3).
    lease_ttl_seconds: int = Field(default=5, ge=2, le=600)
    # Lease TTL of leader candidates: failover takes at most this plus one second.
    election_ttl_seconds: int = Field(default=2, ge=2, le=60)
    # A leader stops acting this long before its lease could have expired.
    election_safety_margin_seconds: float = Field(default=0.5, ge=0)
    connect_timeout_seconds: float = Field(default=5.0, gt=0)
    # Deadline of one etcd request (a keep-alive must answer well within TTL/3).
    request_timeout_seconds: float = Field(default=1.5, gt=0)
    # Register this process's endpoint under /ringrift/<cluster>/services/.
    register_service: bool = True
    # Delay before re-listing after a watch error (doubles up to the maximum).
    watch_retry_seconds: float = Field(default=0.2, gt=0)
    watch_retry_max_seconds: float = Field(default=2.0, gt=0)

    @field_validator("endpoints")
    @classmethod
    def _endpoints(cls, value: list[str]) -> list[str]:
        for endpoint in value:
            host, sep, port = endpoint.rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"expected host:port, got {endpoint!r}")
        return value


class StateSettings(_Section):
    """StateService's database."""

    database_url: str = "sqlite+aiosqlite:///./ringrift-state.db"
    # Watchers are woken at least this often to poll for events written by other replicas.
    event_poll_seconds: float = Field(default=1.0, gt=0)
    # Maximum events per ListEvents page / WatchEvents catch-up batch.
    event_batch_size: int = Field(default=500, ge=1, le=10_000)


class GpuDeclaration(_Section):
    model: str = ""
    count: int = Field(default=0, ge=0, le=64)
    memory_mb: int = Field(default=0, ge=0)


class AgentSettings(_Section):
    """The node agent: identity, data directory and declared capabilities."""

    # Stable node identity (letters, digits, '-', '_'); never an address.
    node_id: str = ""
    data_dir: Path = Path("./ringrift-data")
    roles: list[Literal["selfplay", "training", "gauntlet", "export"]] = Field(
        default_factory=lambda: ["selfplay", "training", "gauntlet", "export"]
    )
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
        from ringrift_runtime.validation import node_id_problem

        problem = node_id_problem(value) if value else None
        if problem:
            raise ValueError(problem)
        return value


DEFAULT_GPU_POWER: list[tuple[str, float]] = [
    # Most specific first: the first pattern contained in the (upper-cased) model wins.
    ("GH200", 2500), ("H200", 2500), ("H100", 2000), ("A100", 624), ("5090", 419), ("L40", 362),
    ("4090", 330), ("5080", 300), ("A10G", 250), ("A10", 250), ("4080", 242), ("5070", 200),
    ("4070", 184), ("3090", 142), ("V100", 125), ("4060", 120), ("3080", 119), ("3070", 81),
    ("3060", 51), ("APPLE M3", 30), ("APPLE M2", 25), ("APPLE M1", 20),
]


class NodeSelectorSettings(_Section):
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
            "selfplay_gpu": 8, "selfplay_policy": 6, "selfplay_heuristic": 2, "selfplay_search": 4,
            "training": 16, "evaluation": 4, "default": 4,
        }
    )
    # Multiplies the ranking power of a node that already holds the job's input data.
    locality_factor: float = Field(default=1.25, ge=1)
    max_top_k: int = Field(default=1000, ge=1)
    # Longest reservation a caller may ask for.
    max_reservation_seconds: int = Field(default=7200, ge=1)

    @field_validator("ram_estimate_gb")
    @classmethod
    def _has_default(cls, value: dict[str, float]) -> dict[str, float]:
        if "default" not in value:
            raise ValueError("needs a 'default' entry")
        return value


class JobSettings(_Section):
    """Job lifecycle (BEHAVIOUR.md, JobManager)."""

    # Timeouts by job kind (s); a job may set its own, "default" covers other kinds.
    timeout_seconds: dict[str, float] = Field(
        default_factory=lambda: {
            "selfplay": 7200, "train": 86400, "gauntlet": 7200, "validate": 7200, "export": 1800,
            "sync": 1800, "default": 3600,
        }
    )
    # A dispatched job not confirmed running within this is retried on another node.
    spawn_verification_seconds: float = Field(default=30.0, gt=0)
    max_attempts: int = Field(default=3, ge=1, le=20)
    retry_backoff_base_seconds: float = Field(default=30.0, ge=0)
    retry_backoff_max_seconds: float = Field(default=300.0, ge=0)
    # Per-node pause between bulk self-play top-ups.
    dispatch_cooldown_seconds: float = Field(default=120.0, ge=0)
    max_reaps_per_node: int = Field(default=10, ge=1)
    # Terminal jobs stay in the live table this long, then move to history.
    retention_seconds: float = Field(default=86400.0, ge=0)
    max_batch: int = Field(default=1000, ge=1)

    @field_validator("timeout_seconds")
    @classmethod
    def _has_default(cls, value: dict[str, float]) -> dict[str, float]:
        if "default" not in value:
            raise ValueError("needs a 'default' entry")
        return value

    def timeout_for(self, kind: str) -> float:
        return self.timeout_seconds.get(kind, self.timeout_seconds["default"])

    def backoff_seconds(self, failures: int) -> float:
        """min(base * 2^n, max) before the next attempt, n = failures so far - 1."""
        return min(self.retry_backoff_base_seconds * 2 ** max(0, failures - 1), self.retry_backoff_max_seconds)


class GatewaySettings(_Section):
    """The gateway: leader election and leader-only work."""

    leader_eligible: bool = True
    # Seconds between the leader's fenced heartbeat writes.
    leader_heartbeat_seconds: float = Field(default=1.0, gt=0)
    # How often the leader asks JobService to dispatch pending jobs.
    dispatch_interval_seconds: float = Field(default=0.5, gt=0)
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
    autoscaling_idle_seconds: float = Field(default=3600.0, gt=0)
    autoscaling_local_dir: str = ""
    autoscaling_up_command: str = ""
    autoscaling_down_command: str = ""
    # HTTP side port of the gateway also serves the dashboard at / (JSON under /api/).
    dashboard: bool = True
    # Cluster status is computed at most once per this many seconds (concurrent callers share it).
    status_cache_seconds: float = Field(default=1.0, ge=0)

    @model_validator(mode="after")
    def _scaling_is_complete(self) -> "GatewaySettings":
        if self.autoscaling_min_nodes > self.autoscaling_max_nodes:
            raise ValueError("autoscaling_min_nodes must not exceed autoscaling_max_nodes")
        if self.autoscaling_provider == "local" and not self.autoscaling_local_dir:
            raise ValueError("autoscaling_provider=local needs autoscaling_local_dir (where the agents it starts live)")
        if self.autoscaling_provider == "command" and not self.autoscaling_up_command:
            raise ValueError("autoscaling_provider=command needs autoscaling_up_command")
        return self


class RingriftSettings(BaseSettings):
    """All settings of a RingRift process."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_NESTED_DELIMITER,
        extra="forbid",
        frozen=True,
    )

    # Unique name of this process in logs and registries; empty derives host-pid.
    instance_id: str = ""
    server: ServerSettings = ServerSettings()
    metrics: MetricsSettings = MetricsSettings()
    logging: LoggingSettings = LoggingSettings()
    endpoints: EndpointSettings = EndpointSettings()
    client: ClientSettings = ClientSettings()
    etcd: EtcdSettings = EtcdSettings()
    state: StateSettings = StateSettings()
    agent: AgentSettings = AgentSettings()
    gateway: GatewaySettings = GatewaySettings()
    nodes: NodeSelectorSettings = NodeSelectorSettings()
    jobs: JobSettings = JobSettings()
    pipeline: PipelineSettings = PipelineSettings()
    selfplay: SelfplaySettings = SelfplaySettings()
    training: TrainingSettings = TrainingSettings()
    sync: SyncSettings = SyncSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_source = InitSettingsSource(settings_cls, init_kwargs=_TOML_DATA.get())
        return (init_settings, env_settings, toml_source)

    def grpc_port(self, service: str) -> int:
        """The port this process's gRPC server binds for ``service``."""
        if self.server.port is not None:
            return self.server.port
        return DEFAULT_PORTS[service]

    def metrics_port(self, grpc_port: int) -> int:
        """The side port for /metrics, derived from the bound gRPC port when unset."""
        if self.metrics.port is not None:
            return self.metrics.port
        return 0 if self.server.port == 0 else grpc_port + METRICS_PORT_OFFSET


_TOML_DATA: ContextVar[dict[str, Any]] = ContextVar("ringrift_toml_data", default={})


def _known_env_names() -> set[str]:
    names = {CONFIG_FILE_ENV}

    def walk(model: type[BaseModel], prefix: str) -> None:
        for field_name, field in model.model_fields.items():
            name = f"{prefix}{field_name}".upper()
            names.add(name)
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                walk(annotation, name + ENV_NESTED_DELIMITER)

    walk(RingriftSettings, ENV_PREFIX)
    return names


# Variables the agent sets for job processes; they are not settings.
JOB_ENV_PREFIX = "RINGRIFT_JOB_"


def _check_env_names(environ: Mapping[str, str]) -> None:
    known = _known_env_names()
    for name in environ:
        upper = name.upper()
        if upper.startswith(ENV_PREFIX) and upper not in known and not upper.startswith(JOB_ENV_PREFIX):
            close = difflib.get_close_matches(upper, sorted(known), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise SettingsError(f"unknown setting {name}{hint}")


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise SettingsError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config file {path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise SettingsError(f"config file {path} cannot be read: {exc.strerror}") from None


def _describe(error: Mapping[str, Any]) -> str:
    location = ".".join(str(part) for part in error["loc"])
    env_name = ENV_PREFIX + ENV_NESTED_DELIMITER.join(str(p) for p in error["loc"]).upper()
    return f"{location} (env {env_name}): {error['msg']}"


def environment_subset(names: list[str]) -> dict[str, str]:
    """The named variables of this process's environment (for passing on to jobs)."""
    return {name: os.environ[name] for name in names if name in os.environ}


def load_settings(config_file: Path | str | None = None, **overrides: Any) -> RingriftSettings:
    """Build and validate the settings of this process; raise SettingsError on any problem."""
    _check_env_names(os.environ)
    path = config_file or os.environ.get(CONFIG_FILE_ENV)
    toml_data = _read_toml(Path(path)) if path else {}
    token = _TOML_DATA.set(toml_data)
    try:
        return RingriftSettings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(_describe(e) for e in exc.errors())
        source = f" (config file {path})" if path else ""
        raise SettingsError(f"invalid settings{source}: {problems}") from None
    finally:
        _TOML_DATA.reset(token)


def to_environment(settings: RingriftSettings, sections: list[str], leave_out: tuple[str, ...] = ()) -> dict[str, str]:
    """Sections of ``settings`` as RINGRIFT_* variables, so a process this one starts
    (an agent the autoscaler adds) reads the same values. ``leave_out``: ``section.field``
    names not to pass on."""
    env: dict[str, str] = {}
    for section in sections:
        for name, value in getattr(settings, section).model_dump(mode="json").items():
            if f"{section}.{name}" in leave_out or value is None:
                continue
            key = f"{ENV_PREFIX}{section.upper()}{ENV_NESTED_DELIMITER}{name.upper()}"
            env[key] = value if isinstance(value, str) else json.dumps(value)
    return env
