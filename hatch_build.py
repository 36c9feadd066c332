"""Hatchling build hook: compiles the agent's native job wrapper
(services/agent/ringrift_agent/native/job_wrapper.c) into
services/agent/ringrift_agent/bin/ringrift-job-wrapper, where the agent looks for it.

A wheel that carries it is tagged for this platform (it needs only the C library). Without
a C compiler the build goes on without it and the agent runs jobs under its Python
wrapper (wrapper.py): slower and larger, the same behaviour."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

try:
    from hatchling.builders.hooks.plugin.interface import BuildHookInterface
except ImportError:  # run as a script (scripts/bootstrap.sh): only build_wrapper is needed
    BuildHookInterface = object  # type: ignore[assignment,misc]

AGENT = Path("services/agent/ringrift_agent")
SOURCE = AGENT / "native" / "job_wrapper.c"
BINARY = AGENT / "bin" / "ringrift-job-wrapper"


def build_wrapper(root: Path) -> Path | None:
    """Compile the wrapper (again when its source changed); None without a C compiler or
    when it does not compile here (printed)."""
    source, binary = root / SOURCE, root / BINARY
    if binary.exists() and binary.stat().st_mtime >= source.stat().st_mtime:
        return binary
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not compiler:
        print("ringrift: no C compiler (cc); the agent will run jobs under its Python wrapper")
        return None
    binary.parent.mkdir(parents=True, exist_ok=True)
    partial = binary.with_suffix(".tmp")
    command = [compiler, "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(partial), str(source)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:  # the package still works: the agent says so and runs wrapper.py
        print(f"ringrift: compiling the job wrapper failed ({' '.join(command)}):\n{result.stderr}")
        partial.unlink(missing_ok=True)
        return None
    partial.replace(binary)
    return binary


class CustomBuildHook(BuildHookInterface):
    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if build_wrapper(Path(self.root)) is None:
            return
        build_data["artifacts"].append(f"/{BINARY.as_posix()}")  # built, so ignored by git
        if version != "editable":
            build_data["pure_python"] = False
            build_data["infer_tag"] = True


if __name__ == "__main__":  # scripts/bootstrap.sh: an editable install's wrapper, rebuilt when its source changed
    build_wrapper(Path(__file__).resolve().parent)
