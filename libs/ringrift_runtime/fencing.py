"""A fencing-token guard for a single process: remembers the highest epoch seen,
persisted to a file (atomic replace, fsynced) so a restart keeps the maximum."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from ringrift_runtime.errors import StaleEpoch


class FileEpochFence:
    def __init__(self, path: Path) -> None:
        self._path = path
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
        tmp = self._path.with_suffix(".tmp")
        with tmp.open("w") as handle:
            json.dump({"highest_epoch": epoch}, handle)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(self._path)

    async def admit(self, epoch: int) -> None:
        """Raise StaleEpoch for an epoch below the highest seen; remember a higher one
        durably before the caller acts on it."""
        async with self._lock:
            if epoch < self.highest:
                raise StaleEpoch(received=epoch, highest=self.highest)
            if epoch > self.highest:
                await asyncio.to_thread(self._store, epoch)
                self.highest = epoch
