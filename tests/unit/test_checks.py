"""The layering rules and code checks are contracts, run in the suite: ruff (lint and
format), import-linter's contracts (pyproject.toml), and mypy strict on every domain
package, the contract helpers and the settings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _run(*command: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize(
    "command",
    [("ruff", "check", "--output-format", "concise", "."), ("ruff", "format", "--check", ".")],
    ids=["lint", "format"],
)
def test_ruff(command: tuple[str, ...]) -> None:
    result = _run(str(BIN / command[0]), *command[1:])
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_import_contracts_are_kept() -> None:
    result = _run(str(BIN / "lint-imports"), "--no-cache")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def test_mypy_strict_on_the_domain() -> None:
    result = _run(str(BIN / "mypy"), "--cache-dir", str(ROOT / ".mypy_cache"), timeout=600)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def test_the_import_contracts_are_live(tmp_path: Path) -> None:
    """A domain module that imports grpc breaks a contract: the gate is not a formality."""
    offender = ROOT / "services" / "jobs" / "ringrift_jobs" / "domain" / "_probe_offender.py"
    offender.write_text("import grpc  # noqa: F401\n")
    try:
        result = _run(str(BIN / "lint-imports"), "--no-cache")
    finally:
        offender.unlink()
    assert result.returncode != 0 and "ringrift_jobs.domain._probe_offender -> grpc" in result.stdout


def test_building_the_project_prints_no_warnings(tmp_path: Path) -> None:
    """The wheel (what the image installs) builds without a warning wall."""
    result = _run(
        sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-cache-dir", "-w", str(tmp_path), str(ROOT),
        timeout=300,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "warning" not in output.lower(), output[-4000:]
    (wheel,) = tmp_path.glob("ringrift_orchestrator-*.whl")
    import zipfile

    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"ringrift_agent/templates/default.toml", "ringrift_state/adapters/migrations/script.py.mako"} <= names
    assert "ringrift_jobs/domain/lifecycle.py" in names and "ringrift/common/v1/common_pb2.pyi" in names
    # Every package of the source tree is in the wheel (a new folder under libs/ once was not).
    packages = {p.parent.name for p in ROOT.glob("libs/*/__init__.py")}
    packages |= {p.parent.name for p in ROOT.glob("services/*/ringrift_*/__init__.py")}
    packages |= {p.parent.name for p in ROOT.glob("workloads/*/ringrift_*/__init__.py")}
    assert packages and {f"{p}/__init__.py" for p in packages} <= names, sorted(
        p for p in packages if f"{p}/__init__.py" not in names
    )
