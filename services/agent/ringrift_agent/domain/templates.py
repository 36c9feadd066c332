"""Job templates: a job kind maps to an argv built from validated parameters, never a
shell string. Parameter values are checked against the template's schema and inserted
as whole argv elements (or parts of one), so no value can add an argument or reach a
shell."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ringrift_contracts.jobparams import DATA_SUBTREES, JOB_SUBTREES, PARAM_TYPES, ParamSpec, resolve_params

__all__ = ["JobTemplate", "Limits", "TemplateError", "build_argv", "parse_template", "resolve_params"]

BUILTIN_PLACEHOLDERS = ("python", "job_id", "attempt", "work_dir", "data_dir", "config_key")
KIND_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


class TemplateError(ValueError):
    """The catalog itself is malformed (reported at agent start)."""


@dataclass(frozen=True)
class Limits:
    """What one job of a template may use; 0 is no limit. Memory is the resident memory
    of the job's whole process group (the agent kills the group past it); CPU seconds
    and open files are rlimits set on the job's process before it starts."""

    memory_mb: int = 0
    cpu_seconds: int = 0
    open_files: int = 0


LIMIT_NAMES = ("memory_mb", "cpu_seconds", "open_files")


@dataclass(frozen=True)
class JobTemplate:
    kind: str
    argv: tuple[str, ...]
    params: dict[str, ParamSpec] = field(default_factory=dict)
    description: str = ""
    timeout_seconds: int = 0  # 0: the default for the kind; a job may ask for less, never more
    role: str = ""
    limits: Limits = Limits()

    def placeholders(self) -> set[str]:
        names: set[str] = set()
        for element in self.argv:
            names.update(re.findall(r"\{([a-z_][a-z0-9_]*)\}", element))
        return names


def parse_template(kind: str, raw: Mapping[str, Any]) -> JobTemplate:
    if not KIND_PATTERN.match(kind):
        raise TemplateError(f"template kind {kind!r}: use lower-case letters, digits, '-', '_'")
    argv = raw.get("argv")
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        raise TemplateError(f"template {kind}: argv must be a non-empty list of strings")
    params: dict[str, ParamSpec] = {}
    for name, spec in (raw.get("params") or {}).items():
        if spec.get("type", "string") not in PARAM_TYPES:
            raise TemplateError(f"template {kind}: param {name} has unknown type {spec.get('type')!r}")
        if name in BUILTIN_PLACEHOLDERS:
            raise TemplateError(f"template {kind}: param {name} shadows a built-in placeholder")
        known = {"type", "required", "default", "min", "max", "pattern", "description", "under", "allow_leading_dash"}
        unknown = set(spec) - known
        if unknown:
            raise TemplateError(f"template {kind}: param {name} has unknown keys {sorted(unknown)}")
        under = spec.get("under", list(DATA_SUBTREES))
        if not isinstance(under, list) or not under or not set(under) <= set(JOB_SUBTREES):
            raise TemplateError(f"template {kind}: param {name}: under must list some of {', '.join(JOB_SUBTREES)}")
        params[name] = ParamSpec(
            name=name,
            type=spec.get("type", "string"),
            required=bool(spec.get("required", False)),
            default=None if spec.get("default") is None else str(spec["default"]),
            min=spec.get("min"),
            max=spec.get("max"),
            pattern=spec.get("pattern"),
            description=spec.get("description", ""),
            under=tuple(under),
            allow_leading_dash=bool(spec.get("allow_leading_dash", False)),
        )
    template = JobTemplate(
        kind=kind,
        argv=tuple(argv),
        params=params,
        description=raw.get("description", ""),
        timeout_seconds=int(raw.get("timeout_seconds", 0)),
        role=raw.get("role", ""),
        limits=_limits(kind, raw.get("limits") or {}),
    )
    unknown = template.placeholders() - set(params) - set(BUILTIN_PLACEHOLDERS)
    if unknown:
        raise TemplateError(f"template {kind}: argv uses undefined placeholders {sorted(unknown)}")
    return template


def _limits(kind: str, raw: Mapping[str, Any]) -> Limits:
    unknown = set(raw) - set(LIMIT_NAMES)
    if unknown:
        raise TemplateError(f"template {kind}: unknown limits {sorted(unknown)} (known: {', '.join(LIMIT_NAMES)})")
    for name, value in raw.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise TemplateError(f"template {kind}: limits.{name} must be a whole number of at least 1")
    return Limits(**raw)


def build_argv(template: JobTemplate, values: Mapping[str, str], builtins: Mapping[str, str]) -> list[str]:
    """Each argv element formatted separately; values are inserted literally."""
    mapping = {**values, **builtins}
    return [element.format_map(mapping) for element in template.argv]
