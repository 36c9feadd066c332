"""JobService decisions (BEHAVIOUR.md, JobManager) as pure functions of plain values."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ringrift_settings import JobSettings


@dataclass(frozen=True)
class RetryDecision:
    retry: bool
    permanent: bool
    not_before: datetime | None


def after_failure(
    attempt: int, max_attempts: int, retriable: bool, now: datetime, settings: JobSettings
) -> RetryDecision:
    """A failed or lost attempt: retry with backoff min(base * 2^n, max) while attempts
    remain and the failure is retriable; otherwise the job fails for good."""
    if retriable and attempt < max_attempts:
        return RetryDecision(True, False, now + timedelta(seconds=settings.backoff_seconds(attempt)))
    return RetryDecision(False, True, None)


def unverified(updated_at: datetime, now: datetime, settings: JobSettings) -> bool:
    """A dispatched job not confirmed running within the verification window."""
    return (now - updated_at).total_seconds() > settings.spawn_verification_seconds


def overdue(started_at: datetime | None, timeout_seconds: float, now: datetime) -> bool:
    return started_at is not None and (now - started_at).total_seconds() > timeout_seconds


def assign(ranked_nodes: list[str], free_slots: dict[str, int]) -> str | None:
    """The best-ranked node with a free slot; takes the slot."""
    for node_id in ranked_nodes:
        if free_slots.get(node_id, 0) > 0:
            free_slots[node_id] -= 1
            return node_id
    return None


def cooling_nodes(last_top_up: dict[str, float], now: float, cooldown_seconds: float) -> set[str]:
    """Nodes that received bulk self-play top-ups less than the cooldown ago."""
    return {node for node, at in last_top_up.items() if now - at < cooldown_seconds}
