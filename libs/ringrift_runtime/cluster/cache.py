"""A watched cache of an etcd prefix: list, then watch from the next revision; after any
watch error, compaction or etcd restart, list again and emit the difference, so the view
never stays stale and every process holding one agrees with etcd."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Generic, TypeVar

import aetcd

from ringrift_runtime.aio import cancel_and_wait, quietly
from ringrift_runtime.cluster.etcd import TRANSIENT_ERRORS, make_client
from ringrift_runtime.cluster.model import Change, ChangeKind, Entry
from ringrift_runtime.settings import EtcdSettings

log = logging.getLogger("ringrift.cluster.cache")

T = TypeVar("T")


class PrefixCache(Generic[T]):
    """Mirror of ``prefix`` decoded with ``decode``; names are the key suffixes."""

    def __init__(
        self,
        settings: EtcdSettings,
        prefix: bytes,
        decode: Callable[[str, bytes], T | None],
        name: str,
    ) -> None:
        self._settings = settings
        self._prefix = prefix
        self._decode = decode
        self.name = name
        self.entries: dict[str, Entry[T]] = {}
        self.revision = 0
        self.ready = asyncio.Event()
        self.relists = 0
        self._subscribers: list[asyncio.Queue[Change[T]]] = []
        self._task: asyncio.Task | None = None
        self._client: aetcd.Client | None = None

    def subscribe(self) -> asyncio.Queue[Change[T]]:
        queue: asyncio.Queue[Change[T]] = asyncio.Queue()
        self._subscribers.append(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Change[T]]) -> None:
        if queue in self._subscribers:
            self._subscribers.remove(queue)

    def values(self) -> dict[str, T]:
        return {name: entry.value for name, entry in self.entries.items()}

    async def start(self, wait: bool = True, timeout: float = 10.0) -> None:
        self._task = asyncio.create_task(self._run(), name=f"cache-{self.name}")
        if wait:
            await asyncio.wait_for(self.ready.wait(), timeout)

    async def wait_ready(self, warn_every: float = 5.0) -> None:
        """Wait, without a time limit, for the first listing; warn while etcd is not
        answering (a service stays NOT_SERVING meanwhile)."""
        while not self.ready.is_set():
            try:
                await asyncio.wait_for(self.ready.wait(), warn_every)
            except TimeoutError:
                log.warning("%s: waiting for etcd to list %s", self.name, self._prefix.decode())

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        await self._close_client()

    async def _close_client(self) -> None:
        if self._client is not None:
            await quietly(self._client.close())
            self._client = None

    def _emit(self, change: Change[T]) -> None:
        for queue in self._subscribers:
            queue.put_nowait(change)

    def _name(self, key: bytes) -> str:
        return key[len(self._prefix) :].decode()

    async def _run(self) -> None:
        attempt = 0
        delay = self._settings.watch_retry_seconds
        while True:
            try:
                self._client = make_client(self._settings, attempt)
                await self._relist()
                delay = self._settings.watch_retry_seconds
                await self._follow()
                raise ConnectionError("watch ended")
            except asyncio.CancelledError:
                raise
            except (*TRANSIENT_ERRORS, ConnectionError) as exc:
                log.warning("%s watch interrupted (%s); re-listing", self.name, type(exc).__name__)
            except Exception:
                log.exception("%s watch failed; re-listing", self.name)
            await self._close_client()
            attempt += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._settings.watch_retry_max_seconds)

    async def _relist(self) -> None:
        assert self._client is not None
        listing = await self._client.get_prefix(self._prefix)
        revision = listing.header.revision
        fresh: dict[str, Entry[T]] = {}
        for kv in listing:
            name = self._name(kv.key)
            value = self._decode(name, kv.value)
            if value is not None:
                fresh[name] = Entry(value, kv.create_revision, kv.mod_revision)
        old = self.entries
        self.entries = fresh
        self.revision = revision
        self.relists += 1
        for name in old.keys() - fresh.keys():
            self._emit(Change(ChangeKind.LEFT, name, old[name].value, old[name].create_revision, revision))
        for name, entry in fresh.items():
            previous = old.get(name)
            if previous is None or previous.create_revision != entry.create_revision:
                if previous is not None:
                    self._emit(Change(ChangeKind.LEFT, name, previous.value, previous.create_revision, revision))
                self._emit(Change(ChangeKind.JOINED, name, entry.value, entry.create_revision, revision))
            elif previous.mod_revision != entry.mod_revision:
                self._emit(Change(ChangeKind.UPDATED, name, entry.value, entry.create_revision, revision))
        self.ready.set()

    async def _follow(self) -> None:
        assert self._client is not None
        watch = await self._client.watch_prefix(self._prefix, start_revision=self.revision + 1)
        try:
            async for event in watch:
                self._apply(event)
        finally:
            await quietly(watch.cancel())

    def _apply(self, event) -> None:
        name = self._name(event.kv.key)
        revision = event.kv.mod_revision
        self.revision = max(self.revision, revision)
        previous = self.entries.get(name)
        if event.kind == aetcd.EventKind.DELETE:
            if previous is not None:
                del self.entries[name]
                self._emit(Change(ChangeKind.LEFT, name, previous.value, previous.create_revision, revision))
            return
        value = self._decode(name, event.kv.value)
        if value is None:
            return
        entry = Entry(value, event.kv.create_revision, revision)
        self.entries[name] = entry
        if previous is None or previous.create_revision != entry.create_revision:
            self._emit(Change(ChangeKind.JOINED, name, value, entry.create_revision, revision))
        else:
            self._emit(Change(ChangeKind.UPDATED, name, value, entry.create_revision, revision))
