"""Shared fixtures: a real etcd per test, settings for in-process servers, and asyncio
debug mode that fails a test whose event loop ran a callback slower than 100 ms."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from ringrift_runtime.settings import RingriftSettings
from ringrift_runtime.local.etcd import EtcdServer

# pyproject.toml sets asyncio_debug = true: every test loop runs in debug mode, which
# warns about any callback slower than 100 ms (asyncio's slow_callback_duration). The
# fixture below fails a test whose loop blocked for longer than FAIL_AFTER_SECONDS. The
# measure is wall time: on a 2-core machine running several service processes the OS
# can preempt the test process past 100 ms without any blocking call, so the failing
# threshold sits at 250 ms, which any real blocking call (a file scan, a synchronous
# database or subprocess wait) still exceeds.
FAIL_AFTER_SECONDS = 0.25


class _SlowCallbacks(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("Executing") and " took " in message:
            seconds = float(message.rsplit(" took ", 1)[1].split()[0])
            if seconds > FAIL_AFTER_SECONDS:
                self.messages.append(message)


@pytest.fixture(autouse=True)
def no_slow_callbacks(request):
    """Fail async tests whose loop blocked longer than FAIL_AFTER_SECONDS in one callback."""
    handler = _SlowCallbacks()
    logger = logging.getLogger("asyncio")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
    if handler.messages and request.node.get_closest_marker("allow_slow_callbacks") is None:
        pytest.fail("event loop blocked: " + "; ".join(handler.messages[:3]))


@pytest.fixture
def etcd(tmp_path: Path):
    """A real etcd server on free ports with a temporary data dir, stopped by PID."""
    server = EtcdServer(tmp_path / "etcd")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def test_settings() -> RingriftSettings:
    """Settings for in-process servers: any free port, no metrics side port."""
    return RingriftSettings(server={"port": 0, "grace_seconds": 1.0}, metrics={"enabled": False})


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
