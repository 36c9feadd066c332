"""The etcd test fixture starts a real etcd on free ports and stops it by PID."""

from __future__ import annotations

import os
import subprocess

from ringrift_runtime.local.etcd import EtcdServer, find_etcd


def _etcdctl(server: EtcdServer, *args: str) -> str:
    result = subprocess.run(
        ["etcdctl", "--endpoints", server.endpoint, *args],
        env={**os.environ, "ETCDCTL_API": "3"},
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )
    return result.stdout


def test_etcd_serves_and_keeps_data_across_restart(etcd: EtcdServer) -> None:
    assert find_etcd()
    assert etcd.healthy()
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
        _etcdctl(other, "put", "k", "other")
        assert _etcdctl(etcd, "get", "k", "--print-value-only").strip() == ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
