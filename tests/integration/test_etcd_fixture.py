"""The etcd test fixture starts a real etcd on free ports with mutual TLS and stops it by
PID; a client without a certificate of the cluster's CA gets nothing from it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from ringrift_runtime.local.etcd import COMPACTION_ARGS, EtcdServer, find_etcd
from ringrift_runtime.testing.pki import TestPki


def _etcdctl(server: EtcdServer, *args: str) -> str:
    return server.etcdctl(*args).stdout.decode()


def test_etcd_serves_and_keeps_data_across_restart(etcd: EtcdServer) -> None:
    assert find_etcd()
    assert etcd.healthy()
    # It compacts its history (etcd refuses unknown flags, so a healthy etcd took them).
    assert etcd.pid is not None
    command = Path(f"/proc/{etcd.pid}/cmdline").read_bytes().decode().split("\0")
    assert all(flag in command for flag in COMPACTION_ARGS), command
    _etcdctl(etcd, "put", "/ringrift/test/k", "v1")
    assert _etcdctl(etcd, "get", "/ringrift/test/k", "--print-value-only").strip() == "v1"

    pid = etcd.pid
    etcd.stop()
    assert pid is not None and not _alive(pid)
    assert not etcd.healthy()

    etcd.start()
    assert _etcdctl(etcd, "get", "/ringrift/test/k", "--print-value-only").strip() == "v1"


def test_two_fixtures_do_not_collide(etcd: EtcdServer, tmp_path) -> None:
    with EtcdServer(tmp_path / "second") as other:
        assert other.client_port != etcd.client_port
        other.etcdctl("put", "k", "other")
        assert _etcdctl(etcd, "get", "k", "--print-value-only").strip() == ""


def test_a_client_without_a_certificate_of_the_cluster_cannot_register_anything(
    etcd: EtcdServer, tmp_path: Path
) -> None:
    """The first build's etcd took a fake member from anyone who reached its port."""
    member = "/ringrift/test/nodes/fake-node"
    base = ["etcdctl", "--endpoints", etcd.url, "--dial-timeout", "3s", "--command-timeout", "5s"]
    attempts = {
        "plaintext": [*base[:2], f"http://{etcd.endpoint}", *base[3:]],
        "TLS without a client certificate": [*base, "--cacert", str(etcd.tls.ca)],
    }
    other_ca = TestPki(tmp_path / "foreign", cluster="test")  # same cluster name, another CA
    foreign = other_ca.files(other_ca.admin())
    attempts["a certificate of another CA"] = [
        *base, "--cacert", str(etcd.tls.ca), "--cert", str(foreign.cert), "--key", str(foreign.key)
    ]  # fmt: skip
    for name, command in attempts.items():
        result = subprocess.run(
            [*command, "put", member, "x"], env={**os.environ, "ETCDCTL_API": "3"}, capture_output=True, timeout=30
        )
        assert result.returncode != 0, name
    assert _etcdctl(etcd, "get", member, "--print-value-only").strip() == ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_first_start_on_a_port_taken_meanwhile_moves_to_free_ports(tmp_path) -> None:
    """Another process took the chosen port between choosing and binding: the fixture
    starts on new ports rather than failing the test that wanted an etcd."""
    import socket

    server = EtcdServer(tmp_path / "taken")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", server.client_port))
        squatter.listen()
        taken = server.client_port
        with server:
            assert server.client_port != taken and server.healthy()
            server.etcdctl("put", "k", "v")


def test_a_cluster_whose_member_found_its_port_taken_starts_again_on_new_ports(tmp_path) -> None:
    """The same for a three-member cluster (a member alone cannot move: its peers know
    its address), so every member moves."""
    import socket

    from ringrift_runtime.local.etcd import EtcdCluster

    cluster = EtcdCluster(tmp_path / "members")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", cluster.members[1].peer_port))
        squatter.listen()
        before = [(m.client_port, m.peer_port) for m in cluster.members]
        cluster.start()
        try:
            assert [(m.client_port, m.peer_port) for m in cluster.members] != before
            assert all(member.healthy() for member in cluster.members)
            cluster.members[2].etcdctl("put", "k", "v")
            assert cluster.members[0].etcdctl("get", "k", "--print-value-only").stdout.strip() == b"v"
        finally:
            cluster.stop()


def test_free_ports_are_not_handed_out_twice_and_lie_below_the_ephemeral_range() -> None:
    """Outgoing connections take their local ports from the ephemeral range; a port a
    server is about to bind is chosen below it, and never twice in a row of many."""
    from ringrift_runtime.local.ports import _ephemeral_low, free_port

    ports = [free_port() for _ in range(500)]
    assert len(set(ports)) == 500
    low = _ephemeral_low()
    if low > 11_000:
        assert max(ports) < low
