"""Typed settings of a process: how the tree is loaded, and the sections every process
has (its server, metrics port, logs, endpoints, outbound calls, etcd). The business
sections (agent, jobs, placement, gateway loops, the pipeline) live in
``ringrift_settings``, whose ``RingriftSettings`` extends ``ProcessSettings``.

Each process builds its settings once at start from, in rising precedence, the defaults
below, an optional TOML file (``--config PATH`` or ``RINGRIFT_CONFIG``), ``RINGRIFT_*``
environment variables (nested with ``__``, e.g. ``RINGRIFT_SERVER__PORT=6000``) and
explicit overrides. Unknown keys, unknown ``RINGRIFT_*`` variables, malformed values and
unreadable files are errors with a message naming the setting; there is no silent
fallback to defaults. This is the only module that reads the environment.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import os
import tomllib
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal, Self, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

ENV_PREFIX = "RINGRIFT_"
ENV_NESTED_DELIMITER = "__"
CONFIG_FILE_ENV = "RINGRIFT_CONFIG"

# The control-plane services and their default gRPC ports.
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


class Section(BaseModel):
    """A settings section: unknown keys are errors and values never change once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSettings(Section):
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
    # Per caller (an identity; its address on an insecure cluster): unary calls in flight
    # and streams open at once; past either the call is RESOURCE_EXHAUSTED at once, so one
    # runaway client cannot take every handler (health checks and reflection are exempt).
    max_calls_per_caller: int = Field(default=1000, ge=1)
    max_streams_per_caller: int = Field(default=200, ge=1)


class MetricsSettings(Section):
    """The HTTP side port with /metrics and /healthz."""

    enabled: bool = True
    host: str = "127.0.0.1"
    # None: the gRPC port + 1000 (any free port when the gRPC port is chosen freely).
    port: int | None = Field(default=None, ge=0, le=65535)


class RotatedFile(Section):
    """The retention of a file a process writes for as long as it runs: renamed <file>.1
    (older ones shifted, the oldest past file_keep deleted) once it reaches file_max_bytes,
    so at most (file_keep + 1) x file_max_bytes stay (256 MiB by default)."""

    file_max_bytes: int = Field(default=64 * 1024 * 1024, ge=4096)
    file_keep: int = Field(default=3, ge=1, le=100)


class LoggingSettings(RotatedFile):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = "text"
    # Log one access line per health/reflection call too (noisy; off by default).
    log_health_checks: bool = False
    # Write the log to this file instead of stderr, kept within file_max_bytes and
    # file_keep (RotatedFile). `ringrift up` sets it to each process's log; when the
    # process's stderr is that same file, stderr follows the log to the new file at every
    # rollover (a crash's traceback stays beside the last lines). Unset (compose,
    # systemd), the log goes to stderr for the runtime's own log handling.
    file: Path | None = None


class TracingSettings(RotatedFile):
    """OpenTelemetry traces. Every call carries W3C trace context (``traceparent``) and the
    request id in logs is the trace id, whatever the exporter; spans leave the process only
    when an exporter is set: ``otlp`` (a collector at ``otlp_endpoint``) or ``file`` (JSON
    lines, one file per process, in ``directory``)."""

    exporter: Literal["none", "otlp", "file"] = "none"
    otlp_endpoint: str = "http://localhost:4317"
    # Plain gRPC to the collector (a collector on the same host or a sidecar).
    otlp_insecure: bool = False
    # The file exporter's files are kept within file_max_bytes and file_keep (RotatedFile).
    directory: Path | None = None
    # Fraction of new traces recorded (calls that arrive with a trace follow its decision).
    sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _file_needs_a_directory(self) -> Self:
        if self.exporter == "file" and self.directory is None:
            raise ValueError("tracing.exporter 'file' needs tracing.directory (RINGRIFT_TRACING__DIRECTORY)")
        return self


def _ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


class EndpointSettings(Section):
    """Where clients find each control-plane service: host:port, or the instances of a
    replicated service (StateService on PostgreSQL) as a comma-separated list of IP
    address:port (a client uses the first that answers and moves on when it dies). Under
    DNS, one name that resolves to every instance does the same (compose gives the
    second StateService the alias ``state``)."""

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
        instances = value.split(",")
        for instance in instances:
            host, sep, port = instance.strip().rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"expected host:port, got {instance[:80]!r}")
            if len(instances) > 1 and not _ip_literal(host):
                raise ValueError(
                    f"{host[:80]!r}: several instances are given as IP addresses "
                    "(or as one DNS name that resolves to all of them)"
                )
        return ",".join(instance.strip() for instance in instances)


class ClientSettings(Section):
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


class EtcdSettings(Section):
    """Membership, service registry and leader election."""

    # Every member of the etcd cluster (host:port): a client talks to one and moves on to
    # the next when it dies, cannot be reached or has lost its raft leader.
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
    # The client's TLS: what the process's security section says unless set here
    # (ProcessSettings fills them in); plaintext when insecure.
    insecure: bool | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    @property
    def tls(self) -> bool:
        return not self.insecure and self.ca_file is not None

    @field_validator("endpoints")
    @classmethod
    def _endpoints(cls, value: list[str]) -> list[str]:
        for endpoint in value:
            host, sep, port = endpoint.rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"expected host:port, got {endpoint!r}")
        return value


class SecuritySettings(Section):
    """Mutual TLS and identities (ARCHITECTURE.md §9). Every gRPC port, the agents' byte
    stream and etcd require a certificate signed by the cluster's CA; a process's identity
    is the SAN URI of its own certificate. ``insecure`` turns all of it off (plaintext, no
    identities: a trusted network only); a process says so loudly when it starts."""

    insecure: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    # Certificate files are checked for changes (renewal) this often; no restart needed.
    reload_seconds: float = Field(default=5.0, gt=0)
    # The gateway's port for callers without a certificate: server-authenticated TLS, a
    # bearer token (users) or a one-time join token (a node joining). None: no such port.
    token_port: int | None = Field(default=None, ge=0, le=65535)
    # The gateway's hashed bearer tokens (written by `ringrift certs token`).
    tokens_file: Path | None = None
    # The CA's private key, on the gateway only: it signs the certificates of nodes that join
    # (and of agents the local autoscaling provider starts). None: this process signs nothing.
    ca_key_file: Path | None = None
    # The agents' byte stream in plaintext (integrity still by sha256): trusted networks only.
    plaintext_file_stream: bool = False
    # Certificates a gateway signs (joining nodes, renewals, autoscaled agents) last this long.
    issued_cert_seconds: float = Field(default=30 * 86400.0, ge=10)
    # Joining from another machine (an agent without certificate files yet): the host:port
    # of a gateway's token port, the CA's fingerprint to pin (`ringrift certs fingerprint`)
    # and a one-time join token (`ringrift certs join-token`). The agent writes its key,
    # certificate and the CA to key_file, cert_file and ca_file, then renews the certificate
    # through the gateway once less than a third of its lifetime is left.
    join_gateway: str = ""
    join_ca_fingerprint: str = ""
    join_token: SecretStr = SecretStr("")
    renew_check_seconds: float = Field(default=600.0, gt=0)


class ProcessSettings(BaseSettings):
    """The settings every RingRift process has; subclasses add their sections."""

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
    tracing: TracingSettings = TracingSettings()
    endpoints: EndpointSettings = EndpointSettings()
    client: ClientSettings = ClientSettings()
    etcd: EtcdSettings = EtcdSettings()
    security: SecuritySettings = SecuritySettings()

    @model_validator(mode="after")
    def _etcd_speaks_like_the_process(self) -> Self:
        """etcd clients present the process's certificate unless the etcd section names its own."""
        etcd, security = self.etcd, self.security
        update = {
            "insecure": security.insecure if etcd.insecure is None else etcd.insecure,
            "ca_file": etcd.ca_file or security.ca_file,
            "cert_file": etcd.cert_file or security.cert_file,
            "key_file": etcd.key_file or security.key_file,
        }
        if all(getattr(etcd, k) == v for k, v in update.items()):
            return self
        object.__setattr__(self, "etcd", etcd.model_copy(update=update))  # frozen: filled once, at load
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_source = InitSettingsSource(settings_cls, init_kwargs=_TOML_DATA.get() or {})
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


_TOML_DATA: ContextVar[dict[str, Any] | None] = ContextVar("ringrift_toml_data", default=None)


def _setting_fields(settings_class: type[BaseModel]) -> Iterator[tuple[str, Any]]:
    """Every RINGRIFT_* variable ``settings_class`` reads (sections and their fields),
    with its field's annotation."""

    def walk(model: type[BaseModel], prefix: str) -> Iterator[tuple[str, Any]]:
        for field_name, field in model.model_fields.items():
            name = f"{prefix}{field_name}".upper()
            annotation = field.annotation
            yield name, annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                yield from walk(annotation, name + ENV_NESTED_DELIMITER)

    return walk(settings_class, ENV_PREFIX)


def setting_names(settings_class: type[BaseModel]) -> set[str]:
    """Every RINGRIFT_* variable ``settings_class`` reads, and RINGRIFT_CONFIG."""
    return {CONFIG_FILE_ENV, *(name for name, _ in _setting_fields(settings_class))}


def path_setting_names(settings_class: type[BaseModel]) -> set[str]:
    """The RINGRIFT_* variables of ``settings_class`` that hold a file or folder (a Path,
    optional or not): a launcher resolves a relative one before its processes, which
    run elsewhere, read it."""
    return {
        name
        for name, annotation in _setting_fields(settings_class)
        if annotation is Path or Path in get_args(annotation)
    }


# Variables the agent sets for job processes; they are not settings.
JOB_ENV_PREFIX = "RINGRIFT_JOB_"


def _check_env_names(settings_class: type[BaseModel], environ: Mapping[str, str]) -> None:
    known = setting_names(settings_class)
    for name in environ:
        upper = name.upper()
        if upper.startswith(ENV_PREFIX) and upper not in known and not upper.startswith(JOB_ENV_PREFIX):
            raise SettingsError(unknown_setting(name, known))


def unknown_setting(name: str, known: set[str]) -> str:
    """What to say of a variable that is not among the ``known`` settings' names."""
    close = difflib.get_close_matches(name.upper(), sorted(known), n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return f"unknown setting {name}{hint}"


def settings_in_environment() -> dict[str, str]:
    """This process's RINGRIFT_* variables, for a launcher that hands the user's settings
    on to the processes it starts (``ringrift up``)."""
    return {name: value for name, value in os.environ.items() if name.upper().startswith(ENV_PREFIX)}


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


S = TypeVar("S", bound=ProcessSettings)


def load_settings_of(settings_class: type[S], config_file: Path | str | None = None, **overrides: Any) -> S:
    """Build and validate the settings of this process; raise SettingsError on any problem."""
    _check_env_names(settings_class, os.environ)
    path = config_file or os.environ.get(CONFIG_FILE_ENV)
    toml_data = _read_toml(Path(path)) if path else {}
    token = _TOML_DATA.set(toml_data)
    try:
        return settings_class(**overrides)
    except ValidationError as exc:
        problems = "; ".join(_describe(e) for e in exc.errors())
        source = f" (config file {path})" if path else ""
        raise SettingsError(f"invalid settings{source}: {problems}") from None
    finally:
        _TOML_DATA.reset(token)


def to_environment(settings: ProcessSettings, sections: list[str], leave_out: tuple[str, ...] = ()) -> dict[str, str]:
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
