"""A local cluster on this machine: etcd, the six managers, two gateway replicas and
N agents as separate processes on free loopback ports, all state and logs under one
folder. Used by `ringrift up` / `ringrift down`. With ``cohost``, StateService and the
managers share one process (``ringrift-cohost``), each still on its own port.

Mutual TLS as in any deployment: the cluster's CA and a certificate for every process
(and an administrator's for the command line) are made under ``<folder>/certs`` on the
first `ringrift up` and kept; etcd requires client certificates too."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ringrift_client.config import Context, context_file
from ringrift_runtime.cluster.etcd import ETCD_IDENTITY
from ringrift_runtime.local.etcd import EtcdServer
from ringrift_runtime.local.processes import (
    LOCAL_AGENT_PID_FILE,
    ServiceProcess,
    signal_if_same,
    signal_pid_files,
    started_at,
)
from ringrift_runtime.security.directory import CertificateDirectory, security_env
from ringrift_runtime.security.identity import Identity, Kind, Role, agent, any_gateway, gateway, user
from ringrift_runtime.security.identity import service as identity_service
from ringrift_runtime.security.tokens import TokenStore
from ringrift_runtime.settings import (
    CONFIG_FILE_ENV,
    SettingsError,
    path_setting_names,
    setting_names,
    unknown_setting,
)

MANAGERS = ("nodes", "sync", "jobs", "selfplay", "training")
COHOST = "managers"  # the co-hosting process's name (StateService and the managers in one)
CLUSTER_FILE = "cluster.json"
CLIENT_FILE = "client.toml"  # the administrator's context for ringrift_client (and the CLI)
PROMETHEUS_FILE = "prometheus.yml"
# The alert rules shipped in the repository (absent from an installed package: then none).
ALERT_RULES = Path(__file__).resolve().parents[3] / "deploy" / "prometheus" / "alerts.yml"
CERTS_DIR = "certs"
LOCAL_HOSTS = ["127.0.0.1", "localhost"]
ADMIN = "admin"
DASHBOARD_TOKEN_SECONDS = 30 * 86400


def admin_of(cluster: str) -> Identity:
    """The local cluster's administrator: the command line's identity."""
    return user(ADMIN, Role.ADMIN, cluster)


# Three demo agents with different declared capabilities (no GPU is needed to run them).
DEMO_AGENTS = (
    {
        "RINGRIFT_AGENT__GPU__MODEL": "NVIDIA A100-SXM4-80GB",
        "RINGRIFT_AGENT__GPU__COUNT": "1",
        "RINGRIFT_AGENT__GPU__MEMORY_MB": "81920",
    },
    {
        "RINGRIFT_AGENT__GPU__MODEL": "NVIDIA GeForce RTX 4090",
        "RINGRIFT_AGENT__GPU__COUNT": "1",
        "RINGRIFT_AGENT__GPU__MEMORY_MB": "24564",
        "RINGRIFT_AGENT__ROLES": '["selfplay", "gauntlet", "export"]',
    },
    {"RINGRIFT_AGENT__ROLES": '["selfplay", "gauntlet", "export"]'},
)


# The demo profile: the reference workload's configs, small training thresholds and short
# loop intervals, so a laptop shows learning within minutes.
DEMO_CONFIGS = ["square6_2p", "square8_2p", "square6_3p"]
DEMO_ENV = {
    "RINGRIFT_PIPELINE__PROFILE": "demo",
    "RINGRIFT_PIPELINE__CONFIGS": json.dumps(DEMO_CONFIGS),
    "RINGRIFT_GATEWAY__QUEUE_INTERVAL_SECONDS": "3",
    "RINGRIFT_GATEWAY__GAMES_COUNT_INTERVAL_SECONDS": "2",
    "RINGRIFT_GATEWAY__TRAINING_TRIGGER_INTERVAL_SECONDS": "3",
    "RINGRIFT_GATEWAY__ELO_SYNC_INTERVAL_SECONDS": "30",
    "RINGRIFT_GATEWAY__REAP_INTERVAL_SECONDS": "10",
    "RINGRIFT_JOBS__DISPATCH_COOLDOWN_SECONDS": "2",
    # Gauntlets against the incumbent in batches of 100 games (fewer rounds of jobs).
    "RINGRIFT_TRAINING__GAUNTLET_BATCH_GAMES": "100",
    "RINGRIFT_JOBS__RETRY_BACKOFF_BASE_SECONDS": "2",
    "RINGRIFT_AGENT__STOP_JOBS_ON_SHUTDOWN": "true",
}


# What `ringrift up` sets for each process itself (its address, files, identity and
# wiring): a user's variable for one of these is refused, never silently overridden.
LAUNCHER_SETS_PREFIXES = (
    "RINGRIFT_SERVER__",
    "RINGRIFT_ETCD__",
    "RINGRIFT_ENDPOINTS__",
    "RINGRIFT_SECURITY__",
    "RINGRIFT_AGENT__GPU__",
    "RINGRIFT_GATEWAY__AUTOSCALING_",
)
LAUNCHER_SETS = {
    "RINGRIFT_INSTANCE_ID",
    "RINGRIFT_METRICS__PORT",
    "RINGRIFT_LOGGING__FILE",
    "RINGRIFT_AGENT__NODE_ID",
    "RINGRIFT_AGENT__DATA_DIR",
    "RINGRIFT_AGENT__ROLES",
    "RINGRIFT_STATE__DATABASE_URL",
}


def launcher_sets(name: str) -> bool:
    upper = name.upper()
    return upper in LAUNCHER_SETS or upper.startswith(LAUNCHER_SETS_PREFIXES)


def settings_to_pass_on(environ: dict[str, str]) -> dict[str, str]:
    """The settings among the user's RINGRIFT_* variables (``environ``) that every
    process of the local cluster gets, over the demo profile. Refused (SettingsError,
    every problem named): a variable `ringrift up` sets itself, and a name with a
    section (``__``) that is no setting (a typo, with the closest name). Passed over in
    silence: RINGRIFT_* variables that are not settings (the command line's
    RINGRIFT_CLI_*, compose's RINGRIFT_IMAGE and the like). A relative file or folder is
    made absolute from here: each process runs in a folder of its own."""
    from ringrift_settings import RingriftSettings  # the services' settings, when starting them

    known, paths = setting_names(RingriftSettings), path_setting_names(RingriftSettings)
    passed, problems = {}, []
    for name, value in sorted(environ.items()):
        upper = name.upper()
        if upper == CONFIG_FILE_ENV:  # a file: the co-host reads one of its own per service
            problems.append(f"{name}: ringrift up takes settings as RINGRIFT_* variables, not a file; unset it")
        elif launcher_sets(upper):
            problems.append(f"{name}: ringrift up sets it for each process itself; unset it")
        elif upper in known:
            passed[name] = str(Path(value).resolve()) if upper in paths and value else value
        elif "__" in upper:
            problems.append(unknown_setting(name, known))
    if problems:
        raise SettingsError("; ".join(problems))
    return passed


@dataclass
class LocalCluster:
    root: Path
    agents: int = 3
    gateways: int = 2
    cluster_name: str = "local"
    # Let the leader add up to this many agents (local-process provider); 0: no autoscaling.
    autoscale_extra: int = 0
    # Extra settings for every process (DEMO_ENV by default; `ringrift up` adds the user's,
    # settings_to_pass_on).
    settings_env: dict[str, str] = field(default_factory=lambda: dict(DEMO_ENV))
    etcd: EtcdServer | None = None
    processes: list[tuple[str, ServiceProcess]] = field(default_factory=list)
    dashboard_token: str = ""
    # StateService and the five managers in one process (ringrift-cohost), each still on
    # its own port with its own certificate: the memory of one interpreter, not six.
    cohost: bool = False

    @property
    def certs(self) -> CertificateDirectory:
        return CertificateDirectory(self.root / CERTS_DIR)

    def _identity(self, service: str, name: str, extra: dict[str, str]) -> Identity:
        if service == "gateway":
            return gateway(name, self.cluster_name)
        if service == "agent":
            return agent(extra["RINGRIFT_AGENT__NODE_ID"], self.cluster_name)
        return identity_service(service, self.cluster_name)

    def _credentials(self, identity: Identity) -> dict[str, str]:
        env = security_env(self.certs.ensure(identity, LOCAL_HOSTS), self.cluster_name)
        if identity.kind is Kind.GATEWAY:  # it signs the certificates of agents it adds (autoscaling)
            env["RINGRIFT_SECURITY__CA_KEY_FILE"] = str(self.certs.ca_key_file)
            env["RINGRIFT_SECURITY__TOKENS_FILE"] = str(self.tokens_file)  # the dashboard's and users' tokens
        return env

    @property
    def tokens_file(self) -> Path:
        return self.certs.path / "tokens.json"

    def _prepare_certificates(self) -> None:
        self.certs.init(self.cluster_name)
        self.certs.ensure(admin_of(self.cluster_name), LOCAL_HOSTS)  # the command line's
        # A viewer token for the dashboard address `ringrift up` prints (only its hash is kept).
        self.dashboard_token = TokenStore(self.tokens_file).add(
            user("dashboard", Role.VIEWER, self.cluster_name), DASHBOARD_TOKEN_SECONDS
        )

    def _env(self) -> dict[str, str]:
        assert self.etcd is not None
        env = {
            "RINGRIFT_ETCD__ENDPOINTS": json.dumps([self.etcd.endpoint]),
            "RINGRIFT_ETCD__CLUSTER_NAME": self.cluster_name,
            "RINGRIFT_METRICS__PORT": "0",
            **self.settings_env,
        }
        for _, process in self.processes:  # StateService and the managers, each alone or co-hosted
            for service in process.services:
                if service in ("state", *MANAGERS):
                    env[f"RINGRIFT_ENDPOINTS__{service.upper()}"] = process.address_of(service)
        return env

    def _start(self, service: str, name: str, extra: dict[str, str] | None = None) -> ServiceProcess:
        extra = extra or {}
        credentials = self._credentials(self._identity(service, name, extra))
        env = {**self._env(), **credentials, "RINGRIFT_INSTANCE_ID": name, **extra}
        process = ServiceProcess(service, self.root / "logs" / name, env=env)
        process.start(own_session=True)
        self.processes.append((name, process))
        self._write_cluster_file()
        return process

    def _start_cohosted(self, database: dict[str, str]) -> ServiceProcess:
        """StateService and the managers in one ringrift-cohost process: what differs
        between them (identity files, instance id, database) in one TOML file each."""
        folder = self.root / "logs" / COHOST
        folder.mkdir(parents=True, exist_ok=True)
        args = []
        for service in ("state", *MANAGERS):
            own = {
                **self._credentials(self._identity(service, service, {})),
                "RINGRIFT_INSTANCE_ID": service,
                **(database if service == "state" else {}),
            }
            config = folder / f"{service}.toml"
            config.write_text(toml_of(own))
            args.append(f"--service={service}={config}")
        process = ServiceProcess("cohost", folder, env=self._env(), args=args)
        process.start(own_session=True)
        self.processes.append((COHOST, process))
        self._write_cluster_file()
        return process

    @property
    def autoscale_dir(self) -> Path:
        return self.root / "autoscale"

    def _autoscaling_env(self) -> dict[str, str]:
        if not self.autoscale_extra:
            return {}
        return {
            "RINGRIFT_GATEWAY__AUTOSCALING_PROVIDER": "local",
            "RINGRIFT_GATEWAY__AUTOSCALING_LOCAL_DIR": str(self.autoscale_dir),
            "RINGRIFT_GATEWAY__AUTOSCALING_MIN_NODES": str(self.agents),
            "RINGRIFT_GATEWAY__AUTOSCALING_MAX_NODES": str(self.agents + self.autoscale_extra),
        }

    def up(self, progress: Callable[[str], None]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        progress("certificates")
        self._prepare_certificates()
        progress("etcd")
        etcd_files = self.certs.ensure(identity_service(ETCD_IDENTITY, self.cluster_name), LOCAL_HOSTS)
        self.etcd = EtcdServer(self.root / "etcd", tls=etcd_files, client=self.certs.files(admin_of(self.cluster_name)))
        self.etcd.start()
        database = {"RINGRIFT_STATE__DATABASE_URL": f"sqlite:///{self.root / 'state' / 'state.db'}"}
        if self.cohost:
            progress(f"state and {', '.join(MANAGERS)} in one process")
            self._start_cohosted(database)
        else:
            progress("state")
            self._start("state", "state", database)
            for manager in MANAGERS:
                progress(manager)
                self._start(manager, manager)
        for index in range(self.gateways):
            progress(f"gateway-{index + 1}")
            self._start("gateway", f"gateway-{index + 1}", self._autoscaling_env())
        for index in range(self.agents):
            node_id = f"node-{index + 1}"
            progress(node_id)
            self._start(
                "agent",
                node_id,
                {
                    "RINGRIFT_AGENT__NODE_ID": node_id,
                    "RINGRIFT_AGENT__DATA_DIR": str(self.root / "data" / node_id),
                    **DEMO_AGENTS[index % len(DEMO_AGENTS)],
                },
            )

    @property
    def gateway_address(self) -> str:
        return next(p.address for name, p in self.processes if p.service == "gateway")

    @property
    def dashboard_urls(self) -> list[str]:
        """Each gateway's dashboard, with the viewer token that signs a browser in once."""
        query = f"?token={self.dashboard_token}" if self.dashboard_token else ""
        return [
            f"http://127.0.0.1:{p.metrics_port}/{query}"
            for _, p in self.processes
            if p.service == "gateway" and p.metrics_port
        ]

    def _write_cluster_file(self) -> None:
        assert self.etcd is not None
        description = {
            "cluster": self.cluster_name,
            "certs": str(self.certs.path),
            "launcher_pid": os.getpid(),
            "launcher_started_at": started_at(os.getpid()),
            "etcd": {
                "endpoint": self.etcd.endpoint,
                "metrics_port": self.etcd.metrics_port,
                "pid": self.etcd.pid,
                "started_at": started_at(self.etcd.pid or 0),
            },
            "processes": [
                {
                    "name": name,
                    "service": p.service,
                    "address": p.address,
                    "pid": p.process.pid if p.process else None,
                    "started_at": started_at(p.process.pid) if p.process else 0.0,
                    "metrics_port": p.metrics_port,
                    "services": {service: p.address_of(service) for service in p.services},
                    "log": str(p.log_path),
                }
                for name, p in self.processes
            ],
        }
        tmp = self.root / (CLUSTER_FILE + ".tmp")
        tmp.write_text(json.dumps(description, indent=2))
        tmp.replace(self.root / CLUSTER_FILE)
        tmp = self.root / (PROMETHEUS_FILE + ".tmp")
        tmp.write_text(self.prometheus_config())
        tmp.replace(self.prometheus_file)
        if any(p.service == "gateway" for _, p in self.processes):
            tmp = self.root / (CLIENT_FILE + ".tmp")
            tmp.write_text(context_file("local", self.client_context(), relative_to=self.root))
            tmp.replace(self.root / CLIENT_FILE)

    def client_context(self) -> Context:
        """The administrator at the first gateway: what `ringrift` and ringrift_client use."""
        files = self.certs.files(admin_of(self.cluster_name))
        return Context(
            self.gateway_address, files.ca, files.cert, files.key, server_name=any_gateway(self.cluster_name)
        )

    @property
    def prometheus_file(self) -> Path:
        return self.root / PROMETHEUS_FILE

    def prometheus_config(self, interval_seconds: int = 5) -> str:
        """A Prometheus configuration for this cluster (JSON, which is YAML): the gateways'
        service discovery for every process, etcd's metrics, and the shipped alert rules;
        the same shape as deploy/prometheus/prometheus.yml for compose."""
        assert self.etcd is not None
        gateways = [p.metrics_port for _, p in self.processes if p.service == "gateway" and p.metrics_port]
        config = {
            "global": {
                "scrape_interval": f"{interval_seconds}s",
                "evaluation_interval": f"{interval_seconds}s",
                "external_labels": {"cluster": self.cluster_name},
            },
            "rule_files": [str(ALERT_RULES)] if ALERT_RULES.is_file() else [],
            "scrape_configs": [
                {
                    "job_name": "ringrift",
                    "http_sd_configs": [
                        {"url": f"http://127.0.0.1:{port}/sd/prometheus", "refresh_interval": f"{interval_seconds}s"}
                        for port in gateways
                    ],
                },
                {
                    "job_name": "etcd",
                    "static_configs": [
                        {
                            "targets": [f"127.0.0.1:{self.etcd.metrics_port}"],
                            "labels": {"cluster": self.cluster_name, "service": "etcd"},
                        }
                    ],
                },
            ],
        }
        return json.dumps(config, indent=2) + "\n"

    def down(self) -> None:
        """Stop agents and gateways first (with any agent the leader added), then the
        managers, state, and etcd."""
        for _, process in reversed(self.processes):
            process.stop()
        signal_pid_files(self.autoscale_dir, f"*/{LOCAL_AGENT_PID_FILE}")
        if self.etcd is not None:
            self.etcd.stop()
        (self.root / CLUSTER_FILE).unlink(missing_ok=True)


def toml_of(env: dict[str, str]) -> str:
    """RINGRIFT_* variables holding strings as a TOML settings file (``RINGRIFT_A__B``:
    key ``b`` of table ``a``); JSON's string escapes are TOML's."""
    tables: dict[str, dict[str, str]] = {}
    for name, value in env.items():
        path = name.removeprefix("RINGRIFT_").lower().split("__")
        table = ".".join(path[:-1])
        tables.setdefault(table, {})[path[-1]] = value
    lines = [f"{key} = {json.dumps(value)}" for key, value in tables.pop("", {}).items()]
    for table, values in tables.items():
        lines += ["", f"[{table}]", *(f"{key} = {json.dumps(value)}" for key, value in values.items())]
    return "\n".join(lines) + "\n"


def read_cluster_file(root: Path) -> dict:
    path = root / CLUSTER_FILE
    if not path.exists():
        raise FileNotFoundError(f"no local cluster in {root} (start one with `ringrift up --dir {root}`)")
    return json.loads(path.read_text())


def stop_from_file(root: Path, timeout: float = 20.0) -> int:
    """Stop a cluster started by another `ringrift up` (SIGTERM to its launcher)."""
    description = read_cluster_file(root)
    launched = (description["launcher_pid"], description.get("launcher_started_at", 0.0))
    if not signal_if_same(*launched):
        # The launcher is gone: stop what it left behind directly (each process only while
        # it is still the one the file names).
        left = [(p["pid"] or 0, p.get("started_at", 0.0)) for p in reversed(description["processes"])]
        left.append((description["etcd"]["pid"] or 0, description["etcd"].get("started_at", 0.0)))
        stopped = sum(signal_if_same(pid, created) for pid, created in left)
        signal_pid_files(root / "autoscale", f"*/{LOCAL_AGENT_PID_FILE}")
        (root / CLUSTER_FILE).unlink(missing_ok=True)
        return stopped
    deadline = time.monotonic() + timeout
    while (root / CLUSTER_FILE).exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    return len(description["processes"]) + 1
