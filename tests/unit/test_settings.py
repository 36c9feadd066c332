"""Settings: one place for defaults, TOML + RINGRIFT_* env, clear errors, no silent fallback."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from ringrift_runtime.settings import DEFAULT_PORTS, SettingsError
from ringrift_settings import load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("RINGRIFT_"):
            monkeypatch.delenv(name)


def test_defaults_without_file_or_env() -> None:
    settings = load_settings()
    assert settings.grpc_port("state") == DEFAULT_PORTS["state"] == 50051
    assert settings.metrics_port(50051) == 51051
    assert settings.etcd.lease_ttl_seconds == 5
    assert settings.endpoints.jobs == "127.0.0.1:50054"


def test_env_overrides_nested_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RINGRIFT_SERVER__PORT", "6001")
    monkeypatch.setenv("RINGRIFT_ETCD__ENDPOINTS", '["10.0.0.1:2379", "10.0.0.2:2379"]')
    settings = load_settings()
    assert settings.grpc_port("state") == 6001
    assert settings.etcd.endpoints == ["10.0.0.1:2379", "10.0.0.2:2379"]


def test_toml_file_then_env_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "ringrift.toml"
    config.write_text('[server]\nport = 7000\ngrace_seconds = 2.5\n[logging]\nformat = "json"\n')
    monkeypatch.setenv("RINGRIFT_SERVER__PORT", "7001")
    settings = load_settings(config)
    assert settings.server.port == 7001  # env beats file
    assert settings.server.grace_seconds == 2.5  # file beats default
    assert settings.logging.format == "json"


def test_config_file_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[etcd]\ncluster_name = 'lab'\n")
    monkeypatch.setenv("RINGRIFT_CONFIG", str(config))
    assert load_settings().etcd.cluster_name == "lab"


def test_port_zero_derives_a_free_metrics_port() -> None:
    settings = load_settings(server={"port": 0})
    assert settings.metrics_port(43210) == 0


def test_unknown_env_variable_is_an_error_with_a_suggestion(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RINGRIFT_SERVER__PROT", "1")
    with pytest.raises(
        SettingsError, match=r"unknown setting RINGRIFT_SERVER__PROT \(did you mean RINGRIFT_SERVER__PORT\?\)"
    ):
        load_settings()


def test_invalid_value_names_the_setting_and_env_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RINGRIFT_ETCD__LEASE_TTL_SECONDS", "1")
    with pytest.raises(SettingsError, match=r"etcd\.lease_ttl_seconds \(env RINGRIFT_ETCD__LEASE_TTL_SECONDS\)"):
        load_settings()


def test_unknown_key_in_file_is_an_error(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[server]\nprot = 1\n")
    with pytest.raises(SettingsError, match=r"server\.prot.*(not permitted|Extra inputs)"):
        load_settings(config)


def test_broken_file_is_an_error_not_a_fallback(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[server\nport = 1\n")
    with pytest.raises(SettingsError, match="is not valid TOML"):
        load_settings(config)
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(tmp_path / "missing.toml")


def test_endpoint_must_be_host_port() -> None:
    with pytest.raises(SettingsError, match=r"endpoints\.state.*expected host:port"):
        load_settings(endpoints={"state": "localhost"})


def test_settings_are_immutable() -> None:
    settings = load_settings()
    with pytest.raises(ValidationError):
        settings.server.port = 1  # type: ignore[misc]


# Files that hand the environment on without reading a setting from it: the job wrapper
# passes its own environment (the job's, as the agent built it) to the job.
PASSES_THE_ENVIRONMENT_ON = {
    "services/agent/ringrift_agent/wrapper.py": "run(work_dir, limits, sys.argv[separator + 1 :], os.environ)"
}


def test_only_the_settings_module_reads_the_environment() -> None:
    root = Path(__file__).resolve().parents[2]
    offenders = []
    for path in [*root.glob("libs/ringrift_runtime/**/*.py"), *root.glob("services/**/*.py")]:
        if path.name == "settings.py" or "testing" in path.parts or "local" in path.parts:
            continue
        text = path.read_text()
        passed_on = PASSES_THE_ENVIRONMENT_ON.get(str(path.relative_to(root)))
        if passed_on is not None:
            assert text.count("os.environ") == 1 and passed_on in text, path  # that one use only
            text = text.replace(passed_on, "")
        if "os.environ" in text or "os.getenv" in text:
            offenders.append(str(path.relative_to(root)))
    assert not offenders, f"read settings through ringrift_runtime.settings: {offenders}"
