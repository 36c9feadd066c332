"""Durable files: the data is fsynced before the rename, the directory after it (the new
name is on disk too), and a reader sees the old file or the new one whole."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ringrift_runtime import durable


@pytest.fixture
def calls(monkeypatch) -> list[tuple[str, str]]:
    """Every fsync and rename, in order, with the path each applies to."""
    seen: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        seen.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(source, target) -> None:
        seen.append(("replace", str(target)))
        real_replace(source, target)

    monkeypatch.setattr(durable.os, "fsync", fsync)
    monkeypatch.setattr(durable.os, "replace", replace)
    return seen


def test_write_atomic_syncs_the_data_then_renames_then_syncs_the_directory(tmp_path: Path, calls) -> None:
    target = tmp_path / "state.json"
    target.write_text("old")
    durable.write_atomic(target, '{"new": 1}', 0o600)
    assert target.read_text() == '{"new": 1}'
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert calls == [
        ("fsync", str(tmp_path / "state.json.tmp")),
        ("replace", str(target)),
        ("fsync", str(tmp_path)),
    ]
    assert not (tmp_path / "state.json.tmp").exists()


def test_write_atomic_keeps_the_mode_whatever_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o077)
    try:
        durable.write_atomic(tmp_path / "public.pem", b"x", 0o644)
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "public.pem").stat().st_mode) == 0o644


def test_a_failed_write_leaves_the_old_file(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "fence.json"
    target.write_text("old")

    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(durable.os, "fsync", full_disk)
    with pytest.raises(OSError):
        durable.write_atomic(target, "new")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fence.json"]


def test_replace_durably_syncs_both_directories(tmp_path: Path, calls) -> None:
    (tmp_path / "dead").mkdir()
    source = tmp_path / "000001.json"
    source.write_text("{}")
    durable.replace_durably(source, tmp_path / "dead" / source.name)
    assert (tmp_path / "dead" / "000001.json").read_text() == "{}"
    assert calls == [
        ("replace", str(tmp_path / "dead" / "000001.json")),
        ("fsync", str(tmp_path / "dead")),
        ("fsync", str(tmp_path)),
    ]


def test_renames_in_one_directory_can_share_its_fsync(tmp_path: Path, calls) -> None:
    durable.write_atomic(tmp_path / "sequence", "7", sync_dir=False)
    durable.write_atomic(tmp_path / "000000000007.json", "{}")
    assert [kind for kind, _ in calls] == ["fsync", "replace", "fsync", "replace", "fsync"]
    assert calls[-1] == ("fsync", str(tmp_path))  # one directory fsync after both renames
