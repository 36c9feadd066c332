"""The agent's attempt model: how an attempt ended, what a restarted agent does, which
process group may be signalled, and what survives a restart on disk."""

from __future__ import annotations

import json

import pytest

from ringrift_agent.domain.attempts import Attempt, Recovery, ending, recovery, timed_out
from ringrift_contracts.jobs import JobState

S = JobState


def attempt(**fields) -> Attempt:
    values = dict(
        job_id="J1",
        attempt=1,
        kind="sleep",
        config_key="",
        work_dir="/w",
        argv=["sleep", "1"],
        timeout_seconds=60.0,
        epoch=3,
    )
    values.update(fields)
    return Attempt(**values)


def test_an_attempt_not_spawned_has_no_process_group_to_signal() -> None:
    assert attempt(pid=0).process_group() is None  # killpg(0) would hit the agent's own group
    assert attempt(pid=-1).process_group() is None  # killpg(-1) would hit every process
    assert attempt(pid=4321).process_group() == 4321


@pytest.mark.parametrize(
    ("cancelled", "code", "expected"),
    [(True, 0, S.CANCELLED), (False, None, S.LOST), (False, 0, S.SUCCEEDED), (False, 7, S.FAILED)],
)
def test_how_an_attempt_ended(cancelled: bool, code: int | None, expected: JobState) -> None:
    end = ending(attempt(cancel_requested=cancelled), code)
    assert end.state == expected
    assert end.collect_result == (expected == S.SUCCEEDED)
    if expected == S.FAILED:
        assert (end.exit_code, end.error) == (7, "exit code 7")


def test_a_fenced_attempt_is_lost_with_why_unless_it_finished_first() -> None:
    fenced = attempt(fenced="n1 lost its etcd lease", cancel_requested=True)
    assert (ending(fenced, None).state, ending(fenced, None).error) == (S.LOST, "n1 lost its etcd lease")
    assert ending(fenced, 0).state == S.CANCELLED  # it had ended by itself: a cancel still wins over success
    assert ending(attempt(fenced="lease"), 0).state == S.SUCCEEDED
    superseded = ending(attempt(superseded=True), None)
    assert superseded.state == S.CANCELLED and "superseded" in superseded.error


def test_a_timeout_is_a_failure_naming_the_limit() -> None:
    assert timed_out(attempt(timeout_seconds=90)).error == "timed out after 90s"
    assert attempt(started_at=100.0, timeout_seconds=90).deadline() == 190.0


@pytest.mark.parametrize(
    ("state", "alive", "exit_recorded", "expected"),
    [
        (S.SUCCEEDED, False, True, Recovery.NOTHING),
        (S.LOST, False, False, Recovery.NOTHING),
        (S.RUNNING, True, False, Recovery.ADOPT),
        (S.RUNNING, False, True, Recovery.CONCLUDE),
        (S.STARTING, True, True, Recovery.CONCLUDE),
        (S.RUNNING, False, False, Recovery.LOST),
        (S.STARTING, False, False, Recovery.LOST),
    ],
)
def test_what_a_restarted_agent_does(state: JobState, alive: bool, exit_recorded: bool, expected: Recovery) -> None:
    assert recovery(attempt(state=state), alive, exit_recorded) is expected


def test_the_record_survives_a_restart_but_a_cancel_in_progress_does_not() -> None:
    before = attempt(
        state=S.RUNNING, pid=55, pid_created=12.5, started_at=100.0, cancel_requested=True, superseded=True
    )
    record = json.loads(json.dumps(before.persisted()))
    record["unknown_future_field"] = 1
    after = Attempt.from_persisted(record)
    assert after.state is S.RUNNING and after.pid == 55 and after.argv == ["sleep", "1"]
    assert not after.cancel_requested and not after.superseded  # judged afresh by JobService's answer


def test_the_report_carries_the_node_and_the_outcome() -> None:
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    report = attempt(state=S.FAILED, exit_code=2, error="exit code 2", traceparent=traceparent).report("node-1")
    assert report == {
        "job_id": "J1",
        "attempt": 1,
        "node_id": "node-1",
        "state": int(S.FAILED),
        "exit_code": 2,
        "error": "exit code 2",
        "result_json": "",
        "cpu_seconds": 0.0,
        "traceparent": traceparent,  # the reports continue the RunJob call's trace
    }
