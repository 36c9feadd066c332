"""Where the command line writes, and how it gives up: one line saying what to fix, a
non-zero exit."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console

console = Console()
err = Console(stderr=True)


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(message, highlight=False, soft_wrap=True)
    raise typer.Exit(code)
