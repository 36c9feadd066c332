"""The agent's data directory as a file server: a manifest of its data files, chunked
reads, and pulls from another agent (``.partial``, sha256 check, atomic rename, resume
from the bytes already present).

Every path is relative to the data directory and lies in one of its data subtrees
(games/, training/, models/): the agent's own files (agent/, jobs/) are never read or
written for a caller. An absolute path, a ``..`` component, or a path that leaves its
subtree through a symlink is refused, checked on the real path (again after the folders
of a pull are created); a partial file is never opened through a symlink. Scans, hashing
and file I/O run in threads, never on the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import sqlite3
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ringrift_runtime.durable import replace_durably
from ringrift_runtime.errors import DependencyUnavailable, InvalidArgument, NotFound, WrongState

DATA_KINDS = ("games", "training", "models")
PARTIAL_SUFFIX = ".partial"
DEFAULT_CHUNK = 1 << 20
MAX_CHUNK = 4 << 20


@dataclass(frozen=True)
class FileInfo:
    path: str  # relative, '/'-separated
    kind: str  # games | training | models
    config_key: str
    size: int
    mtime: float
    sha256: str
    game_count: int


class DataDir:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        # (path, size, mtime_ns) -> (sha256, game count): hashing a large file once.
        self._hashes: dict[tuple[str, int, int], tuple[str, int]] = {}

    def resolve(self, relative: str, field: str = "path") -> Path:
        """The absolute path of ``relative``: inside a data subtree, also on its real path."""
        pure = PurePosixPath(relative)
        if not relative or pure.is_absolute() or ".." in pure.parts or "\x00" in relative or "\\" in relative:
            raise InvalidArgument.field(
                field, "must be a relative path inside the data directory (no '..', no leading '/')"
            )
        if len(pure.parts) < 2 or pure.parts[0] not in DATA_KINDS:
            raise InvalidArgument.field(field, f"must be a file under {', '.join(k + '/' for k in DATA_KINDS)}")
        return self.confined(self.root / pure, pure.parts[0], field)

    def confined(self, path: Path, kind: str, field: str) -> Path:
        """``path`` when its real path (symlinks followed) stays under <root>/<kind>."""
        subtree = Path(os.path.realpath(self.root / kind))
        real = Path(os.path.realpath(path))
        if subtree != self.root / kind or not real.is_relative_to(subtree):
            raise InvalidArgument.field(field, f"leads outside {kind}/ of the data directory (through a symlink)")
        return path

    # -- manifest ---------------------------------------------------------------------

    async def manifest(self, kind: str = "", config_key: str = "") -> list[FileInfo]:
        return await asyncio.to_thread(self._scan, kind, config_key)

    def _scan(self, kind: str, config_key: str) -> list[FileInfo]:
        files: list[FileInfo] = []
        seen: set[tuple[str, int, int]] = set()
        for top in DATA_KINDS if not kind else (kind,):
            base = self.root / top
            if not base.is_dir():
                continue
            for config_dir in sorted(base.iterdir()):
                if config_dir.is_symlink() or not config_dir.is_dir() or (config_key and config_dir.name != config_key):
                    continue
                for path in sorted(config_dir.iterdir()):
                    if (
                        path.name.startswith(".")
                        or path.name.endswith((PARTIAL_SUFFIX, ".json"))
                        or path.is_symlink()
                        or not path.is_file()
                    ):
                        continue
                    stat = path.stat()
                    relative = f"{top}/{config_dir.name}/{path.name}"
                    key = (relative, stat.st_size, stat.st_mtime_ns)
                    seen.add(key)
                    sha, games = self._hash(path, key, top)
                    files.append(FileInfo(relative, top, config_dir.name, stat.st_size, stat.st_mtime, sha, games))
        if not kind and not config_key:
            self._hashes = {k: v for k, v in self._hashes.items() if k in seen}
        return files

    def _hash(self, path: Path, key: tuple[str, int, int], top: str) -> tuple[str, int]:
        """(sha256, game count) of ``path`` as ``key`` (relative path, size, mtime_ns)
        describes it, computed once per key; game counts only for game databases."""
        cached = self._hashes.get(key)
        if cached is None:
            cached = (sha256_of(path), count_games(path) if top == "games" else 0)
            self._hashes[key] = cached
        return cached

    def _hash_of(self, relative: str, path: Path, stat: os.stat_result) -> str:
        top = PurePosixPath(relative).parts[0]
        return self._hash(path, (relative, stat.st_size, stat.st_mtime_ns), top)[0]

    async def describe(self, relative: str) -> tuple[Path, int, str]:
        """Path, size and sha256 of one file (hash cached like the manifest's)."""
        path = self.resolve(relative)

        def work():
            if not path.is_file():
                raise NotFound(f"{relative} is not on this node")
            stat = path.stat()
            return path, stat.st_size, self._hash_of(relative, path, stat)

        return await asyncio.to_thread(work)

    async def open_snapshot(self, relative: str):
        """An open binary file of ``relative`` with the size and sha256 of what is open:
        bytes read from it later match the hash even if the path is replaced meanwhile."""
        path = self.resolve(relative)

        def work():
            if not path.is_file():
                raise NotFound(f"{relative} is not on this node")
            handle = path.open("rb")
            try:
                stat = os.fstat(handle.fileno())
                return handle, stat.st_size, self._hash_of(relative, path, stat)
            except BaseException:
                handle.close()
                raise

        return await asyncio.to_thread(work)

    async def _holds(self, relative: str, target: Path, sha256: str) -> bool:
        """Whether ``target`` already has this content (hash cached by path, size, mtime)."""

        def work() -> bool:
            if not target.is_file():
                return False
            return self._hash_of(relative, target, target.stat()) == sha256

        return await asyncio.to_thread(work)

    def disk_usage(self) -> tuple[float, int]:
        usage = shutil.disk_usage(self.root)
        return 100.0 * usage.used / usage.total, usage.free

    # -- pulls ------------------------------------------------------------------------

    async def pull(self, relative: str, sha256: str, size: int, chunks, max_bytes_per_second: int = 0):
        """Write a file from ``chunks(offset)`` (an async iterator of (offset, bytes, size,
        sha256) from the source) into ``relative``: append to ``<relative>.partial`` from
        the bytes it already holds, verify, rename. Yields (bytes_done, resumed, completed)."""
        target = self.resolve(relative)
        partial = target.with_name(target.name + PARTIAL_SUFFIX)
        if await self._holds(relative, target, sha256):
            yield size, False, True
            return
        await asyncio.to_thread(target.parent.mkdir, parents=True, exist_ok=True)
        kind = PurePosixPath(relative).parts[0]
        await asyncio.to_thread(self.confined, target.parent, kind, "path")  # the folders just made, too
        offset = await asyncio.to_thread(_partial_size, partial, size)
        resumed = offset > 0
        writer = _Writer(partial)
        await writer.open()  # hashes the prefix a resumed transfer already holds
        started, sent = time.monotonic(), 0
        try:
            async with aclosing(chunks(offset)) as received:
                async for chunk_offset, data in received:
                    if chunk_offset != offset:
                        raise WrongState(f"source sent offset {chunk_offset}, expected {offset}")
                    if offset + len(data) > size:
                        raise WrongState(f"{relative}: the source sent more than the {size} bytes expected")
                    await writer.write(data)  # overlaps with receiving the next chunk
                    offset += len(data)
                    sent += len(data)
                    yield offset, resumed, False
                    if max_bytes_per_second:
                        ahead = sent / max_bytes_per_second - (time.monotonic() - started)
                        if ahead > 0:
                            await asyncio.sleep(ahead)
        finally:
            actual = await writer.close()
        if offset < size:  # the source ended early: keep the prefix for a resume
            raise DependencyUnavailable(f"{relative}: the source sent {offset} of {size} bytes; pull again to resume")
        if actual != sha256:
            await asyncio.to_thread(partial.unlink, True)
            raise WrongState(f"{relative}: sha256 mismatch after transfer (got {actual[:12]}…)")
        await asyncio.to_thread(replace_durably, partial, target)
        yield offset, resumed, True


class _Writer:
    """Appends to a ``.partial`` file and hashes it a few chunks behind the network:
    one worker thread writes, another hashes (file writes and hashlib release the GIL),
    while the event loop receives the next chunk. Each thread keeps the chunk order."""

    AHEAD = 8

    def __init__(self, partial: Path) -> None:
        self._partial = partial
        self._writes = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pull-write")
        self._hashes = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pull-hash")
        self._pending: deque[asyncio.Future] = deque()
        self._digest = hashlib.sha256()
        self._handle = None

    async def open(self) -> None:
        def prepare():
            # O_NOFOLLOW: a partial file planted as a symlink is never written through.
            fd = os.open(self._partial, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
            handle = os.fdopen(fd, "r+b", buffering=0)
            try:
                for block in iter(lambda: handle.read(DEFAULT_CHUNK), b""):
                    self._digest.update(block)
            except BaseException:
                handle.close()
                raise
            self._handle = handle

        await asyncio.get_running_loop().run_in_executor(self._writes, prepare)

    async def write(self, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        self._pending.append(
            asyncio.gather(
                loop.run_in_executor(self._writes, _write_all, self._handle, data),
                loop.run_in_executor(self._hashes, self._digest.update, data),
            )
        )
        if len(self._pending) >= self.AHEAD:
            await self._pending.popleft()

    async def close(self) -> str:
        """Wait for every write, close; a partial file that received nothing is removed.
        Returns the sha256 of everything in the file."""
        try:
            while self._pending:
                await self._pending.popleft()
        finally:
            for pending in self._pending:  # after a failed write: let the others finish
                await asyncio.gather(pending, return_exceptions=True)

            def finish():
                if self._handle is not None:
                    os.fsync(self._handle.fileno())  # the bytes durable before the rename makes them the file
                    self._handle.close()
                if self._partial.exists() and self._partial.stat().st_size == 0:
                    self._partial.unlink()

            await asyncio.get_running_loop().run_in_executor(self._writes, finish)
            self._writes.shutdown(wait=False)
            self._hashes.shutdown(wait=False)
        return self._digest.hexdigest()


def _write_all(handle, data: bytes) -> None:
    view = memoryview(data)
    while view:  # an unbuffered write may be short
        view = view[handle.write(view) :]


def check_offset(offset: int, size: int) -> None:
    """A read from ``offset`` must start within the file (its end included)."""
    if offset > size:
        raise InvalidArgument.field("offset", f"must be at most the file size {size}")


def _partial_size(partial: Path, size: int) -> int:
    try:
        current = partial.lstat().st_size
    except FileNotFoundError:
        return 0
    if partial.is_symlink():
        raise InvalidArgument.field("path", "its partial file is a symlink: refused")
    if current > size:  # not a prefix of this file: start again
        partial.unlink()
        return 0
    return current


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(DEFAULT_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def count_games(path: Path) -> int:
    """Games in a game database (an SQLite file with a ``games`` table); 0 otherwise."""
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            return int(db.execute("SELECT count(*) FROM games").fetchone()[0])
    except sqlite3.Error:
        return 0


def check_reported_games(data_dir: Path, result_json: str) -> str:
    """A succeeded job's result checked against what it wrote: a result that names a game
    database (``path`` under ``games/``) and a game count must hold that many games there.
    The error, or "" when it holds up or the result names no game database."""
    try:
        result = json.loads(result_json) if result_json else {}
    except ValueError:
        return ""
    if not isinstance(result, dict) or "games" not in result or not isinstance(result.get("path"), str):
        return ""
    relative = result["path"]
    if not relative.startswith("games/"):
        return ""
    root = data_dir.resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root / "games") or not path.is_file():
        return f"the result names {relative[:80]!r}, which is not a game database under games/"
    try:
        reported = int(result["games"])
    except (TypeError, ValueError):
        return "the result's game count is not a number"
    written = count_games(path)
    if written != reported:
        return f"reported {reported} games but {relative[:80]} holds {written}"
    return ""


async def read_ahead(path: Path, offset: int, size: int, chunk_size: int, depth: int = 4):
    """(offset, bytes) chunks of ``path`` from ``offset`` to ``size``, with up to
    ``depth`` positional reads in flight on worker threads while earlier chunks are sent."""
    fd = await asyncio.to_thread(os.open, path, os.O_RDONLY)
    pending: deque[tuple[int, asyncio.Future]] = deque()
    loop = asyncio.get_running_loop()
    next_offset = offset
    try:
        while True:
            while len(pending) < depth and next_offset < size:
                pending.append((next_offset, loop.run_in_executor(None, os.pread, fd, chunk_size, next_offset)))
                next_offset += chunk_size
            if not pending:
                return
            at, future = pending.popleft()
            data = await future
            if not data:
                return
            yield at, data
    finally:
        for _, future in pending:
            future.cancel()
        await asyncio.gather(*(f for _, f in pending), return_exceptions=True)
        await asyncio.to_thread(os.close, fd)
