"""JobService decisions against hand-computed cases."""

from datetime import UTC, datetime, timedelta

from ringrift_jobs.domain.policy import after_failure, assign, cooling_nodes, overdue, unverified
from ringrift_settings import JobSettings

NOW = datetime(2026, 1, 1, tzinfo=UTC)
SETTINGS = JobSettings()


def test_retries_back_off_then_fail_for_good() -> None:
    first = after_failure(1, 3, True, NOW, SETTINGS)
    second = after_failure(2, 3, True, NOW, SETTINGS)
    third = after_failure(3, 3, True, NOW, SETTINGS)
    assert (first.retry, first.not_before) == (True, NOW + timedelta(seconds=30))
    assert (second.retry, second.not_before) == (True, NOW + timedelta(seconds=60))
    assert (third.retry, third.permanent) == (False, True)
    assert after_failure(1, 3, False, NOW, SETTINGS).permanent
    assert SETTINGS.backoff_seconds(6) == 300  # capped


def test_verification_timeout_and_slots() -> None:
    assert not unverified(NOW - timedelta(seconds=29), NOW, SETTINGS)
    assert unverified(NOW - timedelta(seconds=31), NOW, SETTINGS)
    assert overdue(NOW - timedelta(seconds=11), 10, NOW) and not overdue(None, 10, NOW)
    free = {"a": 1, "b": 2}
    assert [assign(["a", "b"], free) for _ in range(4)] == ["a", "b", "b", None]


def test_top_up_cooldown() -> None:
    last = {"a": 100.0, "b": 10.0}
    assert cooling_nodes(last, now=150.0, cooldown_seconds=120) == {"a"}
    assert cooling_nodes(last, now=300.0, cooldown_seconds=120) == set()
