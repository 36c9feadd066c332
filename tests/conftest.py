"""Shared fixtures: a real etcd per test, settings for in-process servers, and a guard
that fails a test whose event loop was blocked by one callback for more than 200 ms."""

from __future__ import annotations

from pathlib import Path

import pytest

from ringrift_runtime.cluster.etcd import ETCD_IDENTITY
from ringrift_runtime.local.etcd import EtcdServer
from ringrift_runtime.security.identity import service
from ringrift_runtime.testing.loop_guard import guard_loop
from ringrift_runtime.testing.pki import TestPki
from ringrift_settings import RingriftSettings

# Every test fails when one of its event-loop callbacks blocked the loop for longer than
# FAIL_AFTER_SECONDS (STYLE.md, habit 1). What counts is the loop's own blocking: wall
# time minus the time its thread waited for a CPU (a busy 2-core machine preempts test
# processes often; that is not a blocking call). See ringrift_runtime.testing.loop_guard.
# 200 ms: twice asyncio's own warning, because what remains after preemption still holds
# page faults and GIL waits on a loaded machine (100 ms failed a PostgreSQL test twice in
# a CI run beside other work); any real blocking call (a scan, a sync subprocess or
# database wait, a sleep) is caught, and wall time no longer counts.
FAIL_AFTER_SECONDS = 0.2


@pytest.fixture(autouse=True)
def no_slow_callbacks(request):
    """Fail tests whose event loop was blocked by one callback longer than FAIL_AFTER_SECONDS."""
    with guard_loop(FAIL_AFTER_SECONDS) as blocked:
        yield blocked
    if blocked.found and request.node.get_closest_marker("allow_slow_callbacks") is None:
        pytest.fail("event loop blocked: " + "; ".join(blocked.found[:3]))


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> TestPki:
    """The tests' certificate authority: every server and client a test starts presents a
    certificate from it (mutual TLS is the default everywhere)."""
    return TestPki(tmp_path_factory.mktemp("pki"), cluster="test")


@pytest.fixture
def etcd(tmp_path: Path, pki: TestPki):
    """A real etcd server on free ports with a temporary data dir, mutual TLS with its
    client and peer certificates required, stopped by PID."""
    server = EtcdServer(tmp_path / "etcd", tls=pki.files(service(ETCD_IDENTITY, "test")), client=pki.files(pki.admin()))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def test_settings(pki: TestPki) -> RingriftSettings:
    """Settings for in-process servers: any free port, no metrics side port, the
    certificate of a test service."""
    return RingriftSettings(
        server={"port": 0, "grace_seconds": 1.0},
        metrics={"enabled": False},
        etcd={"cluster_name": "test"},
        security=pki.security(service("state", "test")),
    )


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL server for the session (Debian's postgresql package)."""
    from ringrift_runtime.testing.postgres import PostgresServer

    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path: Path) -> str:
    """A fresh database of each supported kind: the state suite runs against both."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'state.db'}"
    return request.getfixturevalue("postgres_server").create_database()
