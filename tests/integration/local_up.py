"""`ringrift up` as a user runs it, for tests that need a whole local cluster: started in
the background, ready once it prints its prompt, stopped (and anything it left killed)
on the way out."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ringrift_cli.local_cluster import stop_from_file

BIN = Path(sys.executable).parent
READY = "press Ctrl-C to stop"


@contextmanager
def local_cluster(
    directory: Path, agents: int = 2, *options: str, timeout: float = 90, env: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """The running launcher (more ``options`` of `ringrift up` given, ``env`` added to its
    environment) and what it printed up to its prompt."""
    up = subprocess.Popen(
        [str(BIN / "ringrift"), "up", "--dir", str(directory), "--agents", str(agents), *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )
    try:
        deadline = time.monotonic() + timeout
        output = ""
        while READY not in output and time.monotonic() < deadline:
            line = up.stdout.readline() if up.stdout else ""
            assert line or up.poll() is None, output
            output += line
        assert READY in output, output
        yield up, output
    finally:
        if up.poll() is None:
            up.terminate()
            try:
                up.wait(30)
            except subprocess.TimeoutExpired:
                up.kill()
                up.wait()
        if (directory / "cluster.json").exists():  # the launcher died first: stop what it left
            stop_from_file(directory)
