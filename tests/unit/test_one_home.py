"""A rule has one home: its text appears there and nowhere else in the handwritten code.
Each entry names a fragment that only its home may contain."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [
    p
    for folder in ("libs", "services", "bench")  # not workloads/: a workload is a user's own program
    for p in (ROOT / folder).rglob("*.py")
    if "libs/ringrift/" not in p.as_posix() and "__pycache__" not in p.parts
]

RULES = {
    # the job-id pattern
    "[0-9A-Za-z][0-9A-Za-z_": {"libs/ringrift_contracts/ids.py"},
    # the node-id pattern
    're.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")': {"libs/ringrift_contracts/ids.py"},
    # the config-key pattern
    "(?P<board>": {"libs/ringrift_contracts/ids.py"},
    # "an epoch on behalf of the leader is positive"
    "epoch > 0": {"libs/ringrift_contracts/check.py"},
    # the effective-GPU rule (detected GPUs win over declared ones)
    ".detected.gpu": {"libs/ringrift_contracts/nodes.py"},
    # declared cores and RAM override detection
    "declared.cpu_cores": {"libs/ringrift_contracts/nodes.py"},
    # the baselines
    '"random", "heuristic"': {"libs/ringrift_settings/pipeline.py"},
    # job states by their generated constants: use ringrift_contracts.jobs / tables
    "JOB_STATE_SCHEDULED": set(),
    # a hand-written read-all-pages loop: use ringrift_contracts.paging
    "next_page_token\n            if not token": set(),
    # a hand-written retry-on-conflict loop: use ringrift_contracts.writes
    "except Conflict:\n                continue": set(),
    # sha256 text
    "[0-9a-f]{64}": {"libs/ringrift_contracts/ids.py"},
}


@pytest.mark.parametrize("fragment", sorted(RULES))
def test_a_rule_has_one_home(fragment: str) -> None:
    found = {p.relative_to(ROOT).as_posix() for p in SOURCES if fragment in p.read_text()}
    assert found <= RULES[fragment], f"{fragment!r} restated in {sorted(found - RULES[fragment])}"


def test_the_check_finds_a_second_home(tmp_path: Path) -> None:
    copy = tmp_path / "copy.py"
    copy.write_text('JOB_ID = r"^[0-9A-Za-z][0-9A-Za-z_-]{0,63}$"\n')
    assert "[0-9A-Za-z][0-9A-Za-z_" in copy.read_text()
