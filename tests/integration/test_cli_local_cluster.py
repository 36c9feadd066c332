"""`ringrift up`, `status` and `down` as a user runs them: a whole local cluster of
real processes comes up, reports a leader, its control plane and its nodes, and goes
away completely."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import grpc
import psutil
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ringrift_cli.local_cluster import DEMO_ENV, admin_of, launcher_sets
from ringrift_runtime.security.directory import CertificateDirectory
from ringrift_runtime.security.identity import service
from ringrift_runtime.security.tls import CertFiles, channel_credentials
from tests.integration.local_up import local_cluster

BIN = Path(sys.executable).parent


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _ringrift(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "ringrift"), *args], capture_output=True, text=True, timeout=timeout)


# A user's settings in the environment of `ringrift up`, and a variable that is not one.
USER_ENV = {"RINGRIFT_JOBS__MAX_ATTEMPTS": "7", "RINGRIFT_TRAINING__GAUNTLET_MODE": "nonregression"}
NOT_A_SETTING = {"RINGRIFT_IMAGE": "ringrift:not-passed-on"}  # compose's


def _ringrift_environment(pid: int) -> dict[str, str]:
    return {name: value for name, value in psutil.Process(pid).environ().items() if name.startswith("RINGRIFT_")}


def test_up_status_down(tmp_path: Path) -> None:
    directory = tmp_path / "cluster"
    with local_cluster(directory, env={**USER_ENV, **NOT_A_SETTING}) as (up, printed):
        assert "settings from the environment: RINGRIFT_JOBS__MAX_ATTEMPTS, RINGRIFT_TRAINING__GAUNTLET_MODE" in printed
        for process in json.loads((directory / "cluster.json").read_text())["processes"]:
            environment = _ringrift_environment(process["pid"])
            assert environment.items() >= USER_ENV.items(), process  # every process has the user's settings
            assert "RINGRIFT_IMAGE" not in environment
            # Everything else is the demo profile or what the launcher sets (and refuses from a user).
            others = set(environment) - set(USER_ENV) - set(DEMO_ENV)
            assert all(launcher_sets(name) for name in others), (process["name"], others)

        status = _ringrift("status", "--dir", str(directory), "--json")
        assert status.returncode == 0, status.stderr
        reply = json.loads(status.stdout)
        assert reply["leaderId"] in ("gateway-1", "gateway-2") and int(reply["epoch"]) > 0
        assert sorted(n["nodeId"] for n in reply["nodes"]) == ["node-1", "node-2"]
        assert sorted({s["service"] for s in reply["services"]}) == [
            "gateway",
            "jobs",
            "nodes",
            "selfplay",
            "state",
            "sync",
            "training",
        ]
        pids = [p["pid"] for p in json.loads((directory / "cluster.json").read_text())["processes"]]

        listed = _ringrift("models", "--dir", str(directory), "--json")  # the group's default: the list
        assert listed.returncode == 0 and isinstance(json.loads(listed.stdout), dict), listed.stderr
        nothing = _ringrift("models", "rollback", "square8_2p", "--dir", str(directory))
        assert nothing.returncode != 0 and "no best model to roll back from" in nothing.stderr + nothing.stdout
        missing = _ringrift("models", "show", "square8_2p.g9.nothing", "--dir", str(directory))
        assert missing.returncode != 0 and "no model 'square8_2p.g9.nothing'" in missing.stderr + missing.stdout
        unknown = _ringrift("models", "rollback", "square19_2p", "--dir", str(directory))
        assert unknown.returncode != 0 and "config_key" in unknown.stderr + unknown.stdout

        explained = _ringrift("explain", "allocation", "--dir", str(directory), "--json")
        assert explained.returncode == 0, explained.stderr
        terms = json.loads(explained.stdout)
        assert {t["configKey"] for t in terms} >= {"square6_2p", "square8_2p"}
        # No rated generation yet: the prior gain; a config whose cost is not measured yet is not moved by it.
        assert all(t["expectedGainElo"] == 100 and 0.33 <= t["costFactor"] <= 3 for t in terms), terms
        assert all(t["costFactor"] == 1 for t in terms if not t.get("cpuSecondsPerGame")), terms

        again = _ringrift("up", "--dir", str(directory))
        assert again.returncode == 1 and "already runs" in again.stderr

        down = _ringrift("down", "--dir", str(directory))
        assert down.returncode == 0, down.stderr
        assert up.wait(30) == 0
        assert not any(_alive(pid) for pid in pids)
        assert not (directory / "cluster.json").exists()


def test_status_without_a_gateway_says_what_to_do() -> None:
    result = _ringrift("--insecure", "status", "--gateway", "127.0.0.1:1", "--timeout", "1")
    assert result.returncode == 1
    assert "cannot reach the gateway at 127.0.0.1:1" in result.stderr and "ringrift up" in result.stderr


def test_status_without_credentials_says_where_they_come_from(tmp_path: Path) -> None:
    result = _ringrift("status", "--gateway", "127.0.0.1:1", "--dir", str(tmp_path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "no credentials" in result.stderr and "ringrift up" in result.stderr and "--ca/--cert/--key" in result.stderr


def test_cohosted_managers_share_one_process_and_keep_their_own_ports_and_identities(tmp_path: Path) -> None:
    """`ringrift up --cohost`: StateService and the five managers in one process, each on
    its own port presenting its own certificate; the cluster runs jobs; down stops it."""
    directory = tmp_path / "cluster"
    with local_cluster(directory, 1, "--cohost") as (up, _):
        processes = json.loads((directory / "cluster.json").read_text())["processes"]
        hosts = [p for p in processes if p["service"] == "cohost"]
        assert len(hosts) == 1 and not any(p["service"] in MANAGED for p in processes), processes
        addresses = hosts[0]["services"]
        assert sorted(addresses) == sorted(MANAGED) and len(set(addresses.values())) == len(MANAGED)

        status = json.loads(_ringrift("status", "--dir", str(directory), "--json").stdout)
        registered = {s["service"]: s["address"] for s in status["services"] if s["service"] != "gateway"}
        assert sorted(registered) == sorted(MANAGED)  # each registered in etcd on its own

        admin = CertificateDirectory(directory / "certs").files(admin_of("local"))
        for name, address in addresses.items():
            other = "jobs" if name != "jobs" else "nodes"
            assert _health(address, admin, service(name, "local").dns) == health_pb2.HealthCheckResponse.SERVING
            with pytest.raises(grpc.RpcError):  # it is not the other service, whatever the port
                _health(address, admin, service(other, "local").dns)

        submitted = _ringrift("submit", "echo", "-p", "message=cohosted", "--dir", str(directory), "--json")
        assert submitted.returncode == 0, submitted.stderr
        job_id = json.loads(submitted.stdout)["job"]["jobId"]
        followed = _ringrift("logs", job_id, "--follow", "--dir", str(directory))
        assert followed.returncode == 0 and "cohosted" in followed.stdout, followed.stdout + followed.stderr

        pids = [p["pid"] for p in processes]
        down = _ringrift("down", "--dir", str(directory))
        assert down.returncode == 0, down.stderr
        assert up.wait(30) == 0
        assert not any(_alive(pid) for pid in pids)


MANAGED = ("state", "nodes", "sync", "jobs", "selfplay", "training")


def _health(address: str, files: CertFiles, server_name: str) -> int:
    options = [("grpc.ssl_target_name_override", server_name)]
    with grpc.secure_channel(address, channel_credentials(files), options=options) as channel:
        request = health_pb2.HealthCheckRequest(service="")
        return health_pb2_grpc.HealthStub(channel).Check(request, timeout=5).status
