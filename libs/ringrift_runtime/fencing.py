"""A fencing-token guard for a single process: remembers the highest epoch seen,
persisted to a file (atomic replace, fsynced) so a restart keeps the maximum. A higher
epoch is remembered only once ``verify`` says it was issued (an agent asks StateService):
a forged epoch from any caller can never fence out the real leader."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

from ringrift_runtime.durable import write_atomic
from ringrift_runtime.errors import StaleEpoch, WrongState


class FileEpochFence:
    def __init__(self, path: Path, verify: Callable[[int], Awaitable[bool]] | None = None) -> None:
        self._path = path
        self._verify = verify
        self._lock = asyncio.Lock()
        self.highest = self._load()

    def _load(self) -> int:
        try:
            return int(json.loads(self._path.read_text())["highest_epoch"])
        except FileNotFoundError:
            return 0
        except (ValueError, KeyError, TypeError) as exc:
            raise RuntimeError(f"fence file {self._path} is corrupt ({exc}); fix or remove it") from None

    def _store(self, epoch: int) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self._path, json.dumps({"highest_epoch": epoch}))

    async def admit(self, epoch: int) -> None:
        """Raise StaleEpoch for an epoch below the highest seen; remember a higher one
        durably before the caller acts on it."""
        async with self._lock:
            if epoch < self.highest:
                raise StaleEpoch(received=epoch, highest=self.highest)
            if epoch > self.highest:
                if self._verify is not None and not await self._verify(epoch):
                    raise WrongState(f"epoch {epoch} was never issued; the highest seen here is {self.highest}")
                await asyncio.to_thread(self._store, epoch)
                self.highest = epoch
