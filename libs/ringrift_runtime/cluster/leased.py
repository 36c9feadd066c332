"""A key kept under its owner's lease: registered, refreshed, re-registered with a new
lease after a loss (etcd restart, partition), and removed at once on graceful stop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from ringrift_runtime.aio import cancel_and_wait, quietly
from ringrift_runtime.cluster.etcd import TRANSIENT_ERRORS, make_client
from ringrift_runtime.cluster.lease import LeaseKeeper
from ringrift_runtime.settings import EtcdSettings

log = logging.getLogger("ringrift.cluster.leased")


class LeasedKey:
    def __init__(
        self,
        settings: EtcdSettings,
        key: bytes,
        value: Callable[[], Awaitable[bytes]],
        name: str,
        refresh_seconds: float | None = None,
    ) -> None:
        self._settings = settings
        self._key = key
        self._value = value
        self.name = name
        self._refresh = refresh_seconds
        self.registered = asyncio.Event()
        self.registrations = 0
        self._keeper: LeaseKeeper | None = None
        self._task: asyncio.Task | None = None

    @property
    def lease_id(self) -> int:
        return self._keeper.lease_id if self._keeper else 0

    def lease_remaining(self) -> float:
        """Seconds the current lease is surely alive; 0 when there is none (never granted,
        lost, or being granted again)."""
        return self._keeper.remaining() if self._keeper is not None else 0.0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"leased-{self.name}")

    async def stop(self) -> None:
        """Stop refreshing and revoke the lease: the key disappears at once."""
        await cancel_and_wait(self._task)
        if self._keeper is not None:
            await self._keeper.stop(revoke=True)
            self._keeper = None
        self.registered.clear()

    async def _run(self) -> None:
        attempt = 0
        delay = self._settings.watch_retry_seconds
        while True:
            keeper = LeaseKeeper(self._settings, self._settings.lease_ttl_seconds, self.name, endpoint_attempt=attempt)
            client = make_client(self._settings, attempt)
            try:
                lease_id = await keeper.start()
                self._keeper = keeper
                await client.put(self._key, await self._value(), lease=lease_id)
                self.registrations += 1
                self.registered.set()
                delay = self._settings.watch_retry_seconds
                log.info("%s registered under lease %x", self.name, lease_id)
                reason = await self._refresh_until_lost(client, keeper, lease_id)
                log.warning("%s lost its registration (%s); registering again", self.name, reason)
            except asyncio.CancelledError:
                raise
            except (*TRANSIENT_ERRORS, ConnectionError) as exc:
                log.warning("%s cannot register in etcd (%s); retrying in %.1fs", self.name, exc, delay)
            finally:
                await quietly(client.close())
            self.registered.clear()
            if self._keeper is keeper:
                await keeper.stop(revoke=False)
                self._keeper = None
            attempt += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._settings.watch_retry_max_seconds)

    async def _refresh_until_lost(self, client, keeper: LeaseKeeper, lease_id: int) -> str:
        lost = asyncio.ensure_future(keeper.wait_lost())
        try:
            while True:
                done, _ = await asyncio.wait({lost}, timeout=self._refresh)
                if done:
                    return lost.result()
                await client.put(self._key, await self._value(), lease=lease_id)
        finally:
            lost.cancel()
