"""Files that survive power loss once written: the data is fsynced before the atomic
rename, and the directory is fsynced after it, so the new name is on disk too (a rename
alone lives in the directory's page cache until the kernel writes it back).

Blocking calls: from an event loop, run them in a thread."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(directory: Path | str) -> None:
    """Make the entries of ``directory`` (a rename, a create, an unlink) durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes | str, mode: int = 0o644, sync_dir: bool = True) -> None:
    """Replace ``path`` with ``data``: readers see the old file or the new one, never a
    part, and after a crash or power loss the file holds one of the two whole.
    ``sync_dir=False`` leaves the directory's fsync to the caller's next write there (one
    fsync makes several renames in one directory durable)."""
    payload = data.encode() if isinstance(data, str) else data
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, mode)  # the umask may have narrowed it
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk leaves the old file and no debris
        raise
    if sync_dir:
        fsync_dir(path.parent)


def replace_durably(source: Path, target: Path) -> None:
    """Rename ``source`` (already fsynced by its writer) to ``target`` and make both
    directories' entries durable."""
    os.replace(source, target)
    fsync_dir(target.parent)
    if source.parent != target.parent:
        fsync_dir(source.parent)
