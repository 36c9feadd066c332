"""StateService's database connections (PostgreSQL) against a network that forgets them in
silence, as a NAT or firewall does: nothing waits on them until TCP gives up. The one that
listens for the other instances' commits (NOTIFY) is taken again; a statement over a
pooled one is given up as unavailable and the next call connects afresh. A database that
cannot be reached at all is unavailable too, not an internal error."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from ringrift_runtime.db import Database
from ringrift_runtime.errors import DependencyUnavailable
from ringrift_runtime.local.ports import free_port
from ringrift_runtime.testing.proxy import TcpProxy

CHANNEL = "ringrift_test"
# The check period of the listening connection and the statement timeout: well above what a
# healthy local query takes on a loaded machine, so only the silenced connection misses it.
CHECK_SECONDS = 2.0


class Calls:
    """How often ``on_notify`` was called, and a wait for the next calls."""

    def __init__(self) -> None:
        self.count = 0
        self._changed = asyncio.Event()

    def __call__(self) -> None:
        self.count += 1
        self._changed.set()

    async def reach(self, count: int, within: float = 10.0) -> None:
        async with asyncio.timeout(within):
            while self.count < count:
                await self._changed.wait()
                self._changed.clear()


@pytest.fixture
def database_url(postgres_server) -> str:
    return postgres_server.create_database()


@pytest.fixture
async def proxied(database_url: str):
    """A fresh database, a URL to it through a proxy, and a connection to it direct."""
    url = make_url(database_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.start()
    direct = await asyncpg.connect(url.set(drivername="postgresql").render_as_string(hide_password=False))
    try:
        yield proxy, url.set(port=proxy.port).render_as_string(hide_password=False), direct
    finally:
        await direct.close()
        await proxy.stop()


async def test_a_listening_connection_that_goes_silent_is_taken_again(proxied) -> None:
    """A listening connection that answers its checks is kept; once the network drops what
    it carries (and tells nobody) it is taken again within two check periods, says so
    (on_notify, for what was committed meanwhile), and NOTIFYs reach it again."""
    proxy, url, direct = proxied
    db = await asyncio.to_thread(Database, url)  # its first PostgreSQL URL imports SQLAlchemy's asyncio
    calls = Calls()
    listening = asyncio.create_task(db.listen(CHANNEL, calls, retry_seconds=0.1, check_seconds=CHECK_SECONDS))
    try:
        await calls.reach(1)  # listening
        await direct.execute(f"NOTIFY {CHANNEL}")
        await calls.reach(2)
        await asyncio.sleep(2.5 * CHECK_SECONDS)  # quiet: two checks, both answered
        assert calls.count == 2

        proxy.silence()
        await direct.execute(f"NOTIFY {CHANNEL}")  # lost on the silent connection
        await calls.reach(3, within=4 * CHECK_SECONDS + 5)  # listening again over a new one
        await direct.execute(f"NOTIFY {CHANNEL}")
        await calls.reach(4)
    finally:
        listening.cancel()
        await asyncio.gather(listening, return_exceptions=True)
        await db.dispose()


def select(value: int):
    return lambda connection: connection.execute(
        text("SELECT CAST(:v AS integer), pg_sleep(0.05)"), {"v": value}
    ).scalar()


async def test_a_statement_over_a_silent_connection_is_given_up_and_the_next_call_connects_afresh(proxied) -> None:
    """Several pooled connections go silent at once: the first call over one of them is
    DependencyUnavailable within its timeout (twice: the ping, then the rollback), and the
    next call answers at once (the pool was dropped, so no other silent one is tried)."""
    proxy, url, _direct = proxied
    db = await asyncio.to_thread(Database, url, "FULL", CHECK_SECONDS)  # the statement timeout
    try:
        assert await asyncio.gather(*(db.read(select(n)) for n in range(4))) == [0, 1, 2, 3]  # four in the pool
        proxy.silence()
        async with asyncio.timeout(4 * CHECK_SECONDS + 5):
            with pytest.raises(DependencyUnavailable, match="did not answer in time"):
                await db.read(select(5))
        async with asyncio.timeout(CHECK_SECONDS):
            assert await db.read(select(6)) == 6
    finally:
        await db.dispose()


async def test_a_database_that_cannot_be_reached_is_unavailable() -> None:
    db = await asyncio.to_thread(Database, f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/ringrift")
    try:
        with pytest.raises(DependencyUnavailable, match="unavailable"):
            await db.read(select(1))
    finally:
        await db.dispose()
