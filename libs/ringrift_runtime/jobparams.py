"""Job template parameters: their schema and one validator, shared by the agent (which
runs jobs) and JobService (which refuses bad submissions before anything is queued)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Mapping

from ringrift_runtime.validation import Validator, parse_config_key

PARAM_TYPES = ("string", "int", "float", "bool", "config_key", "data_path")
# A safe default for free-form strings: no shell metacharacters, no path separators.
DEFAULT_STRING_PATTERN = r"^[A-Za-z0-9_.:=+,@-]{1,256}$"
MAX_VALUE_LENGTH = 1024
PATH_PATTERN = re.compile(r"^[A-Za-z0-9_.=+,@/-]{1,512}$")


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


def resolve_params(
    kind: str, specs: Mapping[str, ParamSpec], params: Mapping[str, str], check: Validator, field: str
) -> dict[str, str]:
    """Validated parameter values of a job of ``kind`` with defaults filled in;
    violations go to ``check``."""
    values: dict[str, str] = {}
    for name in params:
        if name not in specs:
            known = ", ".join(sorted(specs)) or "none"
            check.fail(f"{field}[{name}]", f"unknown parameter for kind {kind} (known: {known})")
    for name, spec in specs.items():
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
