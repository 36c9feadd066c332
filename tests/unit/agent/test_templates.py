"""Job templates and their parameters: a data path stays in the subtrees its template
declares, a value that starts with '-' is refused unless the template allows it, and the
catalog refuses a subtree that is not one of the data subtrees."""

from __future__ import annotations

import pytest

from ringrift_agent.adapters.catalog import DEFAULT_CATALOG, load_catalog
from ringrift_agent.domain.templates import TemplateError, build_argv, parse_template, resolve_params
from ringrift_contracts.check import Check
from ringrift_runtime.errors import InvalidArgument


def _violations(template, params: dict[str, str]) -> dict[str, str]:
    check = Check()
    resolve_params(template.kind, template.params, params, check, "spec.params")
    try:
        check.raise_if_invalid()
    except InvalidArgument as refused:
        return {v.field: v.description for v in refused.violations}
    return {}


def test_data_paths_stay_in_their_subtrees() -> None:
    catalog = load_catalog(DEFAULT_CATALOG)
    train = catalog["train"]
    ok = {"training_file": "training/sq/t.npz", "output": "models/sq/m.npz", "checkpoint": "checkpoints/sq/r.npz"}
    assert _violations(train, ok) == {}
    wrong = _violations(train, {**ok, "output": "games/sq/m.npz", "training_file": "agent/outbox/x.json"})
    assert set(wrong) == {"spec.params[output]", "spec.params[training_file]"}
    assert "models/" in wrong["spec.params[output]"]
    assert _violations(train, {**ok, "output": "models"}) == {"spec.params[output]": "must be a file under models/"}


def test_a_leading_dash_is_refused_unless_the_template_allows_it() -> None:
    echo = load_catalog(DEFAULT_CATALOG)["echo"]
    assert "must not start with '-'" in _violations(echo, {"message": "--help"})["spec.params[message]"]
    assert _violations(echo, {"message": "a-b"}) == {}
    relaxed = parse_template(
        "flags", {"argv": ["prog", "{flag}"], "params": {"flag": {"type": "string", "allow_leading_dash": True}}}
    )
    assert _violations(relaxed, {"flag": "-v"}) == {}
    seeds = load_catalog(DEFAULT_CATALOG)["selfplay"]
    assert _violations(seeds, {"seed": "-1"}) == {}  # a number within its declared range is a number
    argv = build_argv(relaxed, {"flag": "-v"}, {})
    assert argv == ["prog", "-v"]


def test_the_catalog_refuses_a_subtree_that_is_not_a_data_subtree() -> None:
    for under in (["agent"], [], "models"):
        with pytest.raises(TemplateError):
            parse_template("t", {"argv": ["p", "{path}"], "params": {"path": {"type": "data_path", "under": under}}})


def test_a_template_declares_its_limits_as_whole_numbers() -> None:
    template = parse_template("hog", {"argv": ["x"], "limits": {"memory_mb": 512, "open_files": 64}})
    assert (template.limits.memory_mb, template.limits.cpu_seconds, template.limits.open_files) == (512, 0, 64)
    assert parse_template("free", {"argv": ["x"]}).limits.memory_mb == 0  # no limit
    for limits, problem in (
        ({"memory": 512}, "unknown limits"),
        ({"memory_mb": 0}, "at least 1"),
        ({"cpu_seconds": 1.5}, "whole number"),
        ({"open_files": True}, "whole number"),
    ):
        with pytest.raises(TemplateError, match=problem):
            parse_template("bad", {"argv": ["x"], "limits": limits})
