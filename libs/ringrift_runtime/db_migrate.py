"""The child process that runs a service's Alembic migrations (``ringrift_runtime.db.upgrade``
starts it), so the service itself never loads Alembic.

    python -m ringrift_runtime.db_migrate SCRIPT_LOCATION TARGET  < database URL

The URL comes on standard input (it may hold a password; arguments are visible to every
user of the machine). Exit 0 when the schema is at TARGET; otherwise 1, with the error
on standard error."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

from ringrift_runtime.db import Database, migrate


async def _run(url: str, script_location: Path, target: str) -> None:
    db = Database(url)
    try:
        await migrate(db, script_location, target)
    finally:
        await db.dispose()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m ringrift_runtime.db_migrate SCRIPT_LOCATION TARGET < database URL", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(name)s: %(message)s")
    url = sys.stdin.readline().strip()
    try:
        asyncio.run(_run(url, Path(args[0]), args[1]))
    except Exception as exc:  # the parent quotes what is written here in its own error
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
