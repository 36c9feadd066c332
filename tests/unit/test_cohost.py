"""`ringrift-cohost` refuses a bad command line before it starts anything, saying what to fix."""

from __future__ import annotations

import pytest

from ringrift_cli.local_cluster import toml_of
from ringrift_cohost.main import main
from ringrift_runtime.settings import load_settings_of
from ringrift_settings import RingriftSettings


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--service", "gateway"], "--service 'gateway': expected one of state, nodes, sync, jobs, selfplay, training"),
        (["--service", "state", "--service", "state"], "each service once, got state, state"),
        (["--service", "nodes="], "--service nodes=: the config file is empty"),
        (["--service", "nodes=/nonexistent/nodes.toml"], "nodes: config file /nonexistent/nodes.toml does not exist"),
    ],
)
def test_a_bad_service_list_exits_2_naming_what_to_fix(argv, message, capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_a_services_own_settings_file_is_what_its_variables_would_say(tmp_path, monkeypatch) -> None:
    env = {
        "RINGRIFT_INSTANCE_ID": "state",
        "RINGRIFT_SECURITY__CERT_FILE": str(tmp_path / 'a "quoted" \\ name.pem'),
        "RINGRIFT_STATE__DATABASE_URL": "sqlite+aiosqlite:///x.db",
    }
    config = tmp_path / "state.toml"
    config.write_text(toml_of(env))
    from_file = load_settings_of(RingriftSettings, config)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    from_env = load_settings_of(RingriftSettings)
    assert from_file == from_env
    assert from_file.security.cert_file == tmp_path / 'a "quoted" \\ name.pem'
