"""Job templates: a job kind maps to an argv built from validated parameters, never a
shell string. Parameter values are checked against the template's schema and inserted
as whole argv elements (or parts of one), so no value can add an argument or reach a
shell."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Mapping

from ringrift_runtime.validation import Validator, parse_config_key

PARAM_TYPES = ("string", "int", "float", "bool", "config_key", "data_path")
# A safe default for free-form strings: no shell metacharacters, no path separators.
DEFAULT_STRING_PATTERN = r"^[A-Za-z0-9_.:=+,@-]{1,256}$"
MAX_VALUE_LENGTH = 1024
BUILTIN_PLACEHOLDERS = ("python", "job_id", "attempt", "work_dir", "data_dir", "config_key")
KIND_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
PATH_PATTERN = re.compile(r"^[A-Za-z0-9_.=+,@/-]{1,512}$")


class TemplateError(ValueError):
    """The catalog itself is malformed (reported at agent start)."""


@dataclass(frozen=True)
class ParamSpec:
    name: str
    type: str = "string"
    required: bool = False
    default: str | None = None
    min: float | None = None
    max: float | None = None
    pattern: str | None = None
    description: str = ""


@dataclass(frozen=True)
class JobTemplate:
    kind: str
    argv: tuple[str, ...]
    params: dict[str, ParamSpec] = field(default_factory=dict)
    description: str = ""
    timeout_seconds: int = 0  # 0: the default for the kind
    role: str = ""

    def placeholders(self) -> set[str]:
        names: set[str] = set()
        for element in self.argv:
            names.update(re.findall(r"\{([a-z_][a-z0-9_]*)\}", element))
        return names


def parse_template(kind: str, raw: Mapping) -> JobTemplate:
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
        unknown = set(spec) - {"type", "required", "default", "min", "max", "pattern", "description"}
        if unknown:
            raise TemplateError(f"template {kind}: param {name} has unknown keys {sorted(unknown)}")
        params[name] = ParamSpec(
            name=name,
            type=spec.get("type", "string"),
            required=bool(spec.get("required", False)),
            default=None if spec.get("default") is None else str(spec["default"]),
            min=spec.get("min"),
            max=spec.get("max"),
            pattern=spec.get("pattern"),
            description=spec.get("description", ""),
        )
    template = JobTemplate(
        kind=kind,
        argv=tuple(argv),
        params=params,
        description=raw.get("description", ""),
        timeout_seconds=int(raw.get("timeout_seconds", 0)),
        role=raw.get("role", ""),
    )
    unknown = template.placeholders() - set(params) - set(BUILTIN_PLACEHOLDERS)
    if unknown:
        raise TemplateError(f"template {kind}: argv uses undefined placeholders {sorted(unknown)}")
    return template


def _check_value(check: Validator, field: str, spec: ParamSpec, value: str) -> None:
    if len(value) > MAX_VALUE_LENGTH or "\x00" in value or "\n" in value:
        check.fail(field, f"must be a single line of at most {MAX_VALUE_LENGTH} characters")
        return
    if spec.type in ("int", "float"):
        try:
            number = int(value) if spec.type == "int" else float(value)
        except ValueError:
            check.fail(field, f"must be {'an integer' if spec.type == 'int' else 'a number'}, got {value[:40]!r}")
            return
        if isinstance(number, float) and not math.isfinite(number):
            check.fail(field, "must be a finite number")
        elif (spec.min is not None and number < spec.min) or (spec.max is not None and number > spec.max):
            check.fail(field, f"must be between {spec.min} and {spec.max}, got {value}")
    elif spec.type == "bool":
        check.check(field, value in ("true", "false"), "must be 'true' or 'false'")
    elif spec.type == "config_key":
        try:
            parse_config_key(value)
        except ValueError as exc:
            check.fail(field, str(exc))
    elif spec.type == "data_path":
        path = PurePosixPath(value)
        check.check(
            field,
            bool(PATH_PATTERN.match(value)) and not path.is_absolute() and ".." not in path.parts,
            "must be a relative path inside the data directory (no '..', no leading '/')",
        )
    else:
        pattern = spec.pattern or DEFAULT_STRING_PATTERN
        check.check(field, re.fullmatch(pattern, value) is not None, f"must match {pattern}")


def resolve_params(template: JobTemplate, params: Mapping[str, str], check: Validator, field: str) -> dict[str, str]:
    """Validated parameter values with defaults filled in; violations go to ``check``."""
    values: dict[str, str] = {}
    for name in params:
        if name not in template.params:
            known = ", ".join(sorted(template.params)) or "none"
            check.fail(f"{field}[{name}]", f"unknown parameter for kind {template.kind} (known: {known})")
    for name, spec in template.params.items():
        if name in params:
            _check_value(check, f"{field}[{name}]", spec, params[name])
            values[name] = params[name]
        elif spec.required:
            check.fail(f"{field}[{name}]", "is required")
        elif spec.default is not None:
            values[name] = spec.default
        else:
            values[name] = ""
    return values


def build_argv(template: JobTemplate, values: Mapping[str, str], builtins: Mapping[str, str]) -> list[str]:
    """Each argv element formatted separately; values are inserted literally."""
    mapping = {**values, **builtins}
    return [element.format_map(mapping) for element in template.argv]
