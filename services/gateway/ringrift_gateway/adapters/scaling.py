"""Providers the AutoScaling loop adds and removes nodes through.

- ``local``: node agents as processes on this machine (the demo and a single big box).
  Each agent's pid is kept in ``<dir>/<node>/agent.pid``, so another gateway replica
  that becomes leader can remove what its predecessor started.
- ``command``: the operator's own scripts for their cloud. The scale-up command gets the
  number of nodes to add as its last argument and may print the new node ids, one per
  line; the scale-down command gets the node id. Commands are split like a shell would
  (no shell runs them) and come only from the gateway's settings.
"""

from __future__ import annotations

import asyncio
import logging
import shlex
from pathlib import Path

from ringrift_runtime.errors import DependencyUnavailable
from ringrift_runtime.local.processes import LOCAL_AGENT_PID_FILE, ServiceProcess, signal_pid_file, write_pid_file
from ringrift_runtime.security.identity import agent
from ringrift_runtime.settings import to_environment
from ringrift_settings import RingriftSettings

log = logging.getLogger("ringrift.gateway.scaling")
PID_FILE = LOCAL_AGENT_PID_FILE
# What a started agent gets from the gateway's own settings (its identity and data
# directory are its own).
PASSED_ON = ["etcd", "client", "logging", "agent", "pipeline"]
OWN = (
    "agent.node_id",
    "agent.data_dir",
    # etcd credentials are the agent's own certificate, not this gateway's
    "etcd.insecure",
    "etcd.ca_file",
    "etcd.cert_file",
    "etcd.key_file",
)
COMMAND_TIMEOUT_SECONDS = 300.0


class LocalProcessProvider:
    name = "local"

    def __init__(self, settings: RingriftSettings, directory: Path, prefix: str = "auto-") -> None:
        self._settings = settings
        self._dir = directory
        self._prefix = prefix

    def _pid_file(self, node_id: str) -> Path:
        return self._dir / node_id / PID_FILE

    def manages(self, node_id: str) -> bool:
        return node_id.startswith(self._prefix) and self._pid_file(node_id).exists()

    def _next_ids(self, count: int) -> list[str]:
        taken = {p.name for p in self._dir.glob(f"{self._prefix}*")} if self._dir.exists() else set()
        ids, n = [], 1
        while len(ids) < count:
            candidate = f"{self._prefix}{n}"
            if candidate not in taken:
                ids.append(candidate)
            n += 1
        return ids

    def _credentials(self, node_id: str) -> dict[str, str]:
        """The new agent's certificate, signed with the CA key this gateway holds."""
        security = self._settings.security
        if security.insecure:
            return {"RINGRIFT_SECURITY__INSECURE": "true"}
        if security.ca_file is None or security.ca_key_file is None:
            raise DependencyUnavailable(
                "the local provider signs the agents it starts: set security.ca_key_file on this gateway"
            )
        from ringrift_runtime.security import pki  # cryptography: when it starts an agent, not at start

        ca = pki.Pem(security.ca_file.read_bytes(), security.ca_key_file.read_bytes())
        identity = agent(node_id, self._settings.etcd.cluster_name)
        cert, key = pki.write(
            self._dir / node_id / "certs", node_id, pki.issue(ca, identity, ["127.0.0.1", "localhost"])
        )
        return {
            "RINGRIFT_SECURITY__CA_FILE": str(security.ca_file),
            "RINGRIFT_SECURITY__CERT_FILE": str(cert),
            "RINGRIFT_SECURITY__KEY_FILE": str(key),
        }

    def _env(self, node_id: str) -> dict[str, str]:
        return {
            **to_environment(self._settings, PASSED_ON, OWN),
            **self._credentials(node_id),
            "RINGRIFT_INSTANCE_ID": node_id,
            "RINGRIFT_AGENT__NODE_ID": node_id,
            "RINGRIFT_AGENT__DATA_DIR": str(self._dir / node_id / "data"),
            "RINGRIFT_METRICS__PORT": "0",
        }

    def _start(self, node_id: str) -> None:
        process = ServiceProcess("agent", self._dir / node_id, env=self._env(node_id))
        process.start(own_session=True)
        assert process.process is not None
        write_pid_file(self._pid_file(node_id), process.process.pid)

    async def add(self, count: int) -> list[str]:
        started = []
        for node_id in self._next_ids(count):
            try:
                await asyncio.to_thread(self._start, node_id)  # waits for the agent's ready file
            except (OSError, TimeoutError, RuntimeError) as exc:
                raise DependencyUnavailable(f"could not start agent {node_id}: {exc}") from exc
            started.append(node_id)
        return started

    async def remove(self, node_id: str) -> None:
        # SIGTERM: the agent drains and leaves the cluster.
        await asyncio.to_thread(signal_pid_file, self._pid_file(node_id))


class CommandProvider:
    name = "command"

    def __init__(self, up_command: str, down_command: str, prefix: str = "") -> None:
        self._up = shlex.split(up_command)
        self._down = shlex.split(down_command)
        self._prefix = prefix

    def manages(self, node_id: str) -> bool:
        return bool(self._down) and node_id.startswith(self._prefix)

    async def _run(self, argv: list[str]) -> str:
        try:
            process = await asyncio.create_subprocess_exec(
                *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
            )
        except OSError as exc:
            raise DependencyUnavailable(f"scaling command {argv[0]} cannot run: {exc}") from exc
        try:
            out, err = await asyncio.wait_for(process.communicate(), COMMAND_TIMEOUT_SECONDS)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise DependencyUnavailable(
                f"scaling command {argv[0]} took longer than {COMMAND_TIMEOUT_SECONDS:.0f} s"
            ) from None
        if process.returncode != 0:
            raise DependencyUnavailable(
                f"scaling command {argv[0]} exited with {process.returncode}: {err.decode(errors='replace')[-300:]}"
            )
        return out.decode(errors="replace")

    async def add(self, count: int) -> list[str]:
        if not self._up:
            raise DependencyUnavailable("no scale-up command is configured (RINGRIFT_GATEWAY__AUTOSCALING_UP_COMMAND)")
        output = await self._run([*self._up, str(count)])
        return [line.strip() for line in output.splitlines() if line.strip()]

    async def remove(self, node_id: str) -> None:
        if not self._down:
            raise DependencyUnavailable(
                "no scale-down command is configured (RINGRIFT_GATEWAY__AUTOSCALING_DOWN_COMMAND)"
            )
        await self._run([*self._down, node_id])
