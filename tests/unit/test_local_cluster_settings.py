"""`ringrift up` hands the user's RINGRIFT_* settings on to every process it starts, and
refuses what it cannot honour instead of dropping it."""

from __future__ import annotations

import pytest

from ringrift_cli.local_cluster import DEMO_ENV, launcher_sets, settings_to_pass_on
from ringrift_runtime.settings import SettingsError


def test_the_user_s_settings_are_passed_on_and_other_variables_are_not() -> None:
    environ = {
        "RINGRIFT_TRAINING__GAUNTLET_MODE": "nonregression",
        "RINGRIFT_SELFPLAY__ALLOCATION": "round_robin",
        "RINGRIFT_LOGGING__FILE_MAX_BYTES": "1000000",  # not the log file itself, which up sets
        "RINGRIFT_CLI_TOKEN": "rrt.secret",  # the command line's own
        "RINGRIFT_IMAGE": "ringrift:dev",  # compose's
        "PATH": "/usr/bin",
    }
    assert settings_to_pass_on(environ) == {
        "RINGRIFT_LOGGING__FILE_MAX_BYTES": "1000000",
        "RINGRIFT_SELFPLAY__ALLOCATION": "round_robin",
        "RINGRIFT_TRAINING__GAUNTLET_MODE": "nonregression",
    }


def test_a_relative_file_is_passed_on_as_absolute_from_where_up_runs(tmp_path, monkeypatch) -> None:
    """Each process runs in a folder of its own: `my-templates.toml` means the one beside
    the user, and a setting that is no file is passed on as written."""
    monkeypatch.chdir(tmp_path)
    passed = settings_to_pass_on(
        {"RINGRIFT_AGENT__TEMPLATES_FILE": "my-templates.toml", "RINGRIFT_JOBS__MAX_ATTEMPTS": "5"}
    )
    assert passed == {
        "RINGRIFT_AGENT__TEMPLATES_FILE": str(tmp_path / "my-templates.toml"),
        "RINGRIFT_JOBS__MAX_ATTEMPTS": "5",
    }


def test_a_setting_the_launcher_sets_and_a_misspelt_one_are_refused_by_name() -> None:
    environ = {
        "RINGRIFT_JOBS__MAX_ATEMPTS": "5",
        "RINGRIFT_SERVER__PORT": "50051",
        "RINGRIFT_STATE__DATABASE_URL": "postgresql+asyncpg://u:hunter2@h/db",
        "RINGRIFT_JOBS__MAX_ATTEMPTS": "5",
        "RINGRIFT_CONFIG": "mine.toml",
    }
    with pytest.raises(SettingsError) as raised:
        settings_to_pass_on(environ)
    said = str(raised.value)
    assert "unknown setting RINGRIFT_JOBS__MAX_ATEMPTS (did you mean RINGRIFT_JOBS__MAX_ATTEMPTS?)" in said
    assert "RINGRIFT_SERVER__PORT: ringrift up sets it" in said
    assert "RINGRIFT_STATE__DATABASE_URL: ringrift up sets it" in said
    assert "RINGRIFT_CONFIG: ringrift up takes settings as RINGRIFT_* variables, not a file" in said
    assert "hunter2" not in said and "50051" not in said  # names, never values


def test_the_demo_profile_is_made_of_settings_a_user_may_change() -> None:
    """What the demo profile sets, a user may set over it (none is the launcher's own)."""
    assert settings_to_pass_on(DEMO_ENV) == DEMO_ENV
    assert not any(launcher_sets(name) for name in DEMO_ENV)
