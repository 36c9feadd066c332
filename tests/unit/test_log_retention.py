"""A process's log file stays within its retention (logging.file, file_max_bytes,
file_keep), and what bypasses logging follows the log to its newest file; a retention
(of the log or of the trace files) too small to keep anything is refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from ringrift_runtime.settings import LoggingSettings, TracingSettings

# A process whose stdout and stderr are its log file (as `ringrift up` starts every
# service): 300 log lines into 4 KiB files, then a line written to stderr directly.
CHILD = """
import logging, os, sys
from pathlib import Path
from ringrift_runtime.logs import configure_logging
from ringrift_runtime.settings import LoggingSettings
configure_logging(LoggingSettings(file=Path(sys.argv[1]), file_max_bytes=4096, file_keep=2), "test")
log = logging.getLogger("ringrift.test")
for n in range(300):
    log.info("line %d", n)
os.write(2, b"written to stderr past logging\\n")
print("printed to stdout", flush=True)
"""


def test_a_log_file_rolls_over_keeps_its_last_files_and_stderr_follows_it(tmp_path: Path) -> None:
    path = tmp_path / "svc.log"
    with path.open("ab") as out:
        done = subprocess.run(
            [sys.executable, "-c", CHILD, str(path)], stdout=out, stderr=subprocess.STDOUT, timeout=60
        )
    assert done.returncode == 0, path.read_text()[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["svc.log", "svc.log.1", "svc.log.2"]
    assert all(p.stat().st_size <= 4096 for p in tmp_path.iterdir())
    newest = path.read_text()
    assert "line 299" in newest
    assert "written to stderr past logging" in newest and "printed to stdout" in newest
    kept = "".join(p.read_text() for p in tmp_path.iterdir())
    assert "line 0\n" not in kept  # the oldest lines went with the oldest file


@pytest.mark.parametrize("section", [LoggingSettings, TracingSettings])
@pytest.mark.parametrize("field, value", [("file_max_bytes", 100), ("file_keep", 0)])
def test_a_file_retention_too_small_to_keep_anything_is_refused(section, field: str, value: int) -> None:
    with pytest.raises(ValidationError, match=field):
        section(**{field: value})
