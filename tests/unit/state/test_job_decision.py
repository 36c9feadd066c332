"""The job state table's decision, as a pure function: which transitions apply, what
each writes, and which events it appends."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ringrift_contracts.jobs import JobState
from ringrift_state.domain.jobs import LEGAL, CurrentJob, Transition, decide

S = JobState


def job(state: JobState = S.RUNNING, attempt: int = 1, node: str = "n1") -> CurrentJob:
    return CurrentJob("J1", state, attempt, node, "selfplay", "square8_2p")


def test_an_unknown_job_changes_nothing() -> None:
    decision = decide(None, Transition("J1", 1, S.RUNNING))
    assert not decision.applied and "does not exist" in decision.reason and decision.attempt is None


def test_a_report_about_a_superseded_attempt_is_recorded_on_that_attempt_only() -> None:
    decision = decide(job(attempt=2), Transition("J1", 1, S.SUCCEEDED, exit_code=0))
    assert not decision.applied and "superseded by attempt 2" in decision.reason
    assert decision.attempt is not None and (decision.attempt.attempt, decision.attempt.state) == (1, S.SUCCEEDED)
    assert decision.attempt.node_id is None  # the attempt keeps the node it ran on
    assert not decision.job_changes and decision.event_state is None


def test_an_expected_state_that_does_not_hold_changes_nothing() -> None:
    decision = decide(job(S.RUNNING), Transition("J1", 1, S.STARTING, from_state=S.SCHEDULED))
    assert (decision.applied, decision.reason) == (False, "job is RUNNING, not SCHEDULED")


@pytest.mark.parametrize("current", list(S))
@pytest.mark.parametrize("target", [s for s in S if s != S.PENDING])
def test_every_pair_of_states_follows_the_table(current: JobState, target: JobState) -> None:
    decision = decide(job(current), Transition("J1", 1, target))
    expected = target in LEGAL[current] and target != current
    assert decision.applied == expected, decision.reason


def test_success_keeps_the_result_and_names_the_node_in_its_event() -> None:
    decision = decide(job(S.RUNNING), Transition("J1", 1, S.SUCCEEDED, result_json='{"games": 3}'))
    assert decision.applied and decision.event_state == S.SUCCEEDED
    assert decision.job_changes == {"state": S.SUCCEEDED, "node_id": "n1", "result_json": '{"games": 3}', "error": ""}
    assert decision.event_attributes == {"attempt": "1", "node_id": "n1", "kind": "selfplay"}
    assert decision.attempt is not None and decision.attempt.finished and not decision.attempt.started


def test_a_retry_starts_the_next_attempt_pending_after_its_backoff() -> None:
    later = datetime(2026, 1, 1, tzinfo=UTC)
    decision = decide(job(S.RUNNING), Transition("J1", 1, S.LOST, error="x" * 9000, retry=True, not_before=later))
    assert decision.applied and decision.next_attempt == 2 and decision.event_state == S.LOST
    assert decision.job_changes["state"] == S.PENDING and decision.job_changes["attempt"] == 2
    assert decision.job_changes["not_before"] == later and decision.job_changes["node_id"] == ""
    assert len(decision.job_changes["error"]) == 4000 and len(decision.event_attributes["error"]) == 500


def test_only_a_failure_or_a_loss_can_be_retried() -> None:
    decision = decide(job(S.RUNNING), Transition("J1", 1, S.SUCCEEDED, retry=True))
    assert not decision.applied and "only a FAILED or LOST attempt" in decision.reason


def test_cancelling_is_permanent() -> None:
    cancelled = decide(job(S.PENDING), Transition("J1", 1, S.CANCELLED, error="operator"))
    assert cancelled.job_changes["permanent"] is True and cancelled.event_state == S.CANCELLED


def test_an_attempt_has_one_started_event_from_starting_or_else_from_running() -> None:
    """JOB_STARTED when RunJob answered (STARTING), not again at the agent's RUNNING
    report; a RUNNING report straight from SCHEDULED (the STARTING write lost) has it."""
    starting = decide(job(S.SCHEDULED), Transition("J1", 1, S.STARTING))
    assert starting.applied and starting.event_state == S.STARTING and starting.attempt is not None
    assert starting.attempt.started
    running = decide(job(S.STARTING), Transition("J1", 1, S.RUNNING))
    assert running.applied and running.event_state is None
    unannounced = decide(job(S.SCHEDULED), Transition("J1", 1, S.RUNNING))
    assert unannounced.applied and unannounced.event_state == S.RUNNING
    ended = decide(job(S.STARTING), Transition("J1", 1, S.SUCCEEDED))
    assert ended.applied and ended.event_state == S.SUCCEEDED
