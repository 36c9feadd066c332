"""Job template parameters: their schema and one validator, shared by the agent (which
runs jobs) and JobService (which refuses bad submissions before anything is queued)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath

from ringrift_contracts.ids import parse_config_key
from ringrift_contracts.limits import MAX_ECHO
from ringrift_runtime.validation import Validator as Check

PARAM_TYPES = ("string", "int", "float", "bool", "config_key", "data_path")
# A safe default for free-form strings: no shell metacharacters, no path separators.
DEFAULT_STRING_PATTERN = r"^[A-Za-z0-9_.:=+,@-]{1,256}$"
MAX_VALUE_LENGTH = 1024
PATH_PATTERN = re.compile(r"^[A-Za-z0-9_.=+,@/-]{1,512}$")
# Where a data_path may point unless its template says otherwise: the data subtrees
# (the files agents exchange). A template may also name checkpoints/ (a job's own resume
# files, never transferred). The agent's own files (agent/, jobs/) are never a job's.
DATA_SUBTREES = ("games", "training", "models")
JOB_SUBTREES = (*DATA_SUBTREES, "checkpoints")


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
    under: tuple[str, ...] = DATA_SUBTREES  # data_path: the subtrees it may point into
    allow_leading_dash: bool = False  # strings and paths: a value may start with '-'


def _check_value(check: Check, field: str, spec: ParamSpec, value: str) -> None:
    if len(value) > MAX_VALUE_LENGTH or "\x00" in value or "\n" in value:
        check.fail(field, f"must be a single line of at most {MAX_VALUE_LENGTH} characters")
        return
    if value.startswith("-") and spec.type in ("string", "data_path") and not spec.allow_leading_dash:
        # It would reach the job's program as an option (`echo --message --help`).
        check.fail(field, "must not start with '-' (the template does not allow it: it would read as an option)")
        return
    if spec.type in ("int", "float"):
        try:
            number = int(value) if spec.type == "int" else float(value)
        except ValueError:
            check.fail(field, f"must be {'an integer' if spec.type == 'int' else 'a number'}, got {value[:MAX_ECHO]!r}")
            return
        if isinstance(number, float) and not math.isfinite(number):
            check.fail(field, "must be a finite number")
        elif (spec.min is not None and number < spec.min) or (spec.max is not None and number > spec.max):
            check.fail(field, f"must be between {spec.min} and {spec.max}, got {value[:MAX_ECHO]}")
    elif spec.type == "bool":
        check.check(field, value in ("true", "false"), "must be 'true' or 'false'")
    elif spec.type == "config_key":
        try:
            parse_config_key(value)
        except ValueError as exc:
            check.fail(field, str(exc))
    elif spec.type == "data_path":
        path = PurePosixPath(value)
        if not (PATH_PATTERN.match(value) and not path.is_absolute() and ".." not in path.parts):
            check.fail(field, "must be a relative path inside the data directory (no '..', no leading '/')")
        elif len(path.parts) < 2 or path.parts[0] not in spec.under:
            check.fail(field, f"must be a file under {', '.join(p + '/' for p in spec.under)}")
    else:
        pattern = spec.pattern or DEFAULT_STRING_PATTERN
        check.check(field, re.fullmatch(pattern, value) is not None, f"must match {pattern}")


def resolve_params(
    kind: str, specs: Mapping[str, ParamSpec], params: Mapping[str, str], check: Check, field: str
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
