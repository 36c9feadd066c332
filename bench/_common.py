"""Shared helpers for the benchmarks: statistics and table printing."""

from __future__ import annotations

import platform
import statistics
import sys


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(values: list[float]) -> str:
    return (
        f"p50 {percentile(values, 50):.3f}  p99 {percentile(values, 99):.3f}  "
        f"min {min(values):.3f}  max {max(values):.3f}  (n={len(values)})"
    )


def figures(prefix: str, values: list[float], digits: int = 3) -> dict[str, float]:
    """``<prefix>_p50``, ``_p99``, ``_min``, ``_max`` of ``values``, for a benchmark's --json."""
    return {
        f"{prefix}_p50": round(percentile(values, 50), digits),
        f"{prefix}_p99": round(percentile(values, 99), digits),
        f"{prefix}_min": round(min(values), digits),
        f"{prefix}_max": round(max(values), digits),
    }


def median_range(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f}, n={len(values)})"


def machine() -> str:
    import os

    return f"{platform.platform()}, {os.cpu_count()} cores, Python {sys.version.split()[0]}"


def table(title: str, rows: list[tuple[str, str, str]]) -> str:
    width = max(len(r[0]) for r in rows)
    lines = [f"## {title}", "", f"| {'measure':<{width}} | value | reference |", f"|{'-' * (width + 2)}|---|---|"]
    lines += [f"| {name:<{width}} | {value} | {reference} |" for name, value, reference in rows]
    return "\n".join(lines)
