"""Loading the agent's job catalog from TOML."""

from __future__ import annotations

import tomllib
from pathlib import Path

from ringrift_agent.domain.templates import JobTemplate, TemplateError, parse_template

DEFAULT_CATALOG = Path(__file__).resolve().parent.parent / "templates" / "default.toml"


def load_catalog(path: Path | None) -> dict[str, JobTemplate]:
    source = path or DEFAULT_CATALOG
    try:
        with source.open("rb") as handle:
            raw = tomllib.load(handle)
    except FileNotFoundError:
        raise TemplateError(f"job catalog {source} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise TemplateError(f"job catalog {source} is not valid TOML: {exc}") from None
    templates = raw.get("templates")
    if not isinstance(templates, dict) or not templates:
        raise TemplateError(f"job catalog {source} defines no [templates.<kind>]")
    return {kind: parse_template(kind, spec) for kind, spec in templates.items()}
