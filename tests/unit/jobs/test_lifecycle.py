"""The job lifecycle over fake ports: validation against templates, dispatch within job
slots and cooldowns, refusals and stale epochs, reaping, reports and cancellation."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from ringrift_contracts.jobparams import ParamSpec
from ringrift_contracts.jobs import JobState
from ringrift_jobs.domain.lifecycle import LOOK_AHEAD, LOOK_AHEAD_MIN, JobLifecycle
from ringrift_jobs.domain.model import Node, Report, Spec
from ringrift_runtime.errors import DependencyUnavailable, InvalidArgument, NotFound, StaleEpoch
from ringrift_settings import JobSettings
from tests.fakes.jobs import FakeAgents, FakeJobStore, FakeMembers, FakePlacement
from tests.polling import until

TEMPLATES = {"echo": {"message": ParamSpec("message", required=True)}, "sleep": {}}


class Clock:
    def __init__(self) -> None:
        self.wall = datetime(2026, 1, 1, tzinfo=UTC)
        self.mono = 1000.0

    def advance(self, seconds: float) -> None:
        self.wall += timedelta(seconds=seconds)
        self.mono += seconds


def _cluster(*nodes: Node, settings: JobSettings | None = None):
    clock = Clock()
    members = FakeMembers(*nodes)
    store = FakeJobStore(now=lambda: clock.wall)
    store.advance_epoch(1)  # the leader claimed its epoch
    agents = FakeAgents(TEMPLATES)
    lifecycle = JobLifecycle(
        store,
        FakePlacement(members),
        agents,
        members,
        settings or JobSettings(),
        lambda: clock.mono,
        lambda: clock.wall,
    )
    return lifecycle, store, agents, members, clock


def node(name: str, slots: int = 2, gpus: int = 0) -> Node:
    return Node(name, f"{name}:1", frozenset({"echo", "sleep"}), slots, gpus)


def record_calls(store, method: str) -> list:
    """The first argument of every call of ``store``'s ``method`` from now on (the limit
    of a listing of dispatchable jobs, the id of a job read)."""
    seen: list = []
    answer = getattr(store, method)

    async def recorded(first, *rest):
        seen.append(first)
        return await answer(first, *rest)

    setattr(store, method, recorded)
    return seen


async def test_submission_is_checked_against_the_templates_and_queues_nothing_when_bad() -> None:
    jobs, store, *_ = _cluster(node("a"))
    with pytest.raises(InvalidArgument) as caught:
        await jobs.submit([(Spec("echo", params={"bogus": "1"}), ""), (Spec("train"), "")])
    fields = {v.field for v in caught.value.violations}
    assert fields == {"jobs[0].spec.params[bogus]", "jobs[0].spec.params[message]", "jobs[1].spec.kind"}
    assert await store.dispatchable(10) == []
    ((job, created),) = await jobs.submit([(Spec("echo", params={"message": "hi"}), "k1")])
    again = await jobs.submit([(Spec("echo", params={"message": "hi"}), "k1")])
    assert created and again == [(job, False)]


async def test_dispatch_fills_free_slots_best_node_first_and_leaves_the_rest_pending() -> None:
    jobs, store, agents, _, _ = _cluster(node("a", slots=2), node("b", slots=1))
    store.advance_epoch(7)
    await jobs.submit([(Spec("sleep"), "") for _ in range(5)])
    dispatched, pending = await jobs.dispatch(100, epoch=7)
    assert (dispatched, pending) == (3, 2)
    assert sorted(n for n, *_ in agents.runs) == ["a", "a", "b"]
    assert all(epoch == 7 for *_, epoch, _ in agents.runs)
    states = sorted([(await store.get(job_id)).state for _, job_id, *_ in agents.runs])
    assert states == [JobState.SCHEDULED] * 3  # STARTING is written a moment later
    await asyncio.sleep(JobSettings().starting_write_delay_seconds + 0.05)
    states = sorted([(await store.get(job_id)).state for _, job_id, *_ in agents.runs])
    assert states == [JobState.STARTING] * 3
    assert await jobs.dispatch(100, epoch=7) == (0, 2)  # no slot left: nothing moves


def record_batches(store) -> list[list[tuple[str, JobState]]]:
    """Every transition call ``store`` answers from now on: (job, target state) in order."""
    batches: list[list[tuple[str, JobState]]] = []
    transition = store.transition

    async def recorded(transitions, epoch=0, with_jobs=False):
        batches.append([(t.job_id, t.to_state) for t in transitions])
        return await transition(transitions, epoch, with_jobs)

    store.transition = recorded
    return batches


async def test_a_job_that_ends_before_its_starting_write_records_both_in_one_commit() -> None:
    """STARTING is written starting_write_delay_seconds after RunJob answered; the report
    of a job that ended sooner takes it along: STARTING then SUCCEEDED in one call (one
    commit, JOB_STARTED before JOB_SUCCEEDED), credited to the reporting node, and the
    delayed write finds nothing left to do. A job still running then is written alone."""
    jobs, store, _, _, _ = _cluster(node("a", slots=2))
    (short, _), (long, _) = await jobs.submit([(Spec("sleep"), ""), (Spec("sleep"), "")])
    batches = record_batches(store)
    assert await jobs.dispatch(10, epoch=1) == (2, 0)
    assert batches == [[(short.job_id, JobState.SCHEDULED), (long.job_id, JobState.SCHEDULED)]]
    assert await jobs.report(Report(short.job_id, 1, "a", JobState.SUCCEEDED, reported_by="a"))
    assert batches[1] == [(short.job_id, JobState.STARTING), (short.job_id, JobState.SUCCEEDED)]
    assert (await store.get(short.job_id)).state == JobState.SUCCEEDED
    await asyncio.sleep(JobSettings().starting_write_delay_seconds + 0.05)
    assert batches[2:] == [[(long.job_id, JobState.STARTING)]]
    assert (await store.get(long.job_id)).state == JobState.STARTING


async def test_starting_is_written_in_the_round_when_its_delay_is_zero_and_a_later_fence_is_only_logged() -> None:
    jobs, store, _, _, _ = _cluster(node("a", slots=2), settings=JobSettings(starting_write_delay_seconds=0))
    ((job, _),) = await jobs.submit([(Spec("sleep"), "")])
    batches = record_batches(store)
    await jobs.dispatch(10, epoch=1)
    assert batches == [[(job.job_id, JobState.SCHEDULED)], [(job.job_id, JobState.STARTING)]]
    # Delayed: a leader deposed meanwhile finds its STARTING fenced out; the round had
    # returned, so that is logged, and the agent's first report moves the job on.
    jobs, store, _, _, _ = _cluster(node("a", slots=2), settings=JobSettings(starting_write_delay_seconds=0.01))
    ((job, _),) = await jobs.submit([(Spec("sleep"), "")])
    await jobs.dispatch(10, epoch=1)
    store.advance_epoch(2)
    await asyncio.sleep(0.1)
    assert (await store.get(job.job_id)).state == JobState.SCHEDULED
    assert await jobs.report(Report(job.job_id, 1, "a", JobState.RUNNING, reported_by="a"))
    assert (await store.get(job.job_id)).state == JobState.RUNNING


async def test_a_round_looks_at_what_its_free_slots_could_take_and_further_only_when_they_stay_free() -> None:
    """A round runs on every job event: it lists as many pending jobs as its free slots
    could take (LOOK_AHEAD times over), not a whole batch of the backlog, and looks
    further only when those leave slots free (here 40 jobs no node runs come first)."""
    sleeper, echoer = Node("a", "a:1", frozenset({"sleep"}), 2, 0), Node("b", "b:1", frozenset({"echo"}), 1, 0)
    jobs, store, agents, _, _ = _cluster(sleeper, echoer)
    await jobs.submit([(Spec("echo", params={"message": "m"}, group=b"echo"), "")])
    assert await jobs.dispatch(10, epoch=1) == (1, 0)  # b is full now
    await jobs.submit([(Spec("echo", params={"message": "m"}, group=b"echo"), "") for _ in range(40)])
    await jobs.submit([(Spec("sleep", group=b"sleep"), "") for _ in range(2)])
    asked = record_calls(store, "dispatchable")
    assert (await jobs.dispatch(1000, epoch=1))[0] == 2  # the two that fit, behind the forty
    assert asked == [LOOK_AHEAD_MIN, 1000]
    assert sorted(node_id for node_id, *_ in agents.runs) == ["a", "a", "b"]
    asked.clear()
    await jobs.submit([(Spec("sleep", group=b"sleep"), "") for _ in range(200)])
    assert await jobs.dispatch(1000, epoch=1) == (0, LOOK_AHEAD_MIN)  # no slot free: the look-ahead only
    assert asked == [LOOK_AHEAD_MIN]


async def test_a_round_lists_the_backlog_beside_the_jobs_on_nodes_and_more_only_for_many_free_slots() -> None:
    """The first listing goes out with the jobs on nodes (capacity unknown yet); only
    when the free slots could take more than it holds, and the backlog has more, is the
    longer look-ahead listed."""
    jobs, store, _, _, _ = _cluster(node("a", slots=20))
    asked = record_calls(store, "dispatchable")
    await jobs.submit([(Spec("sleep"), "")])
    assert await jobs.dispatch(1000, epoch=1) == (1, 0)
    assert asked == [LOOK_AHEAD_MIN]  # one job pending: nothing more to list
    asked.clear()
    await jobs.submit([(Spec("sleep"), "") for _ in range(100)])
    assert (await jobs.dispatch(1000, epoch=1))[0] == 19  # every free slot filled
    assert asked == [LOOK_AHEAD_MIN, LOOK_AHEAD * 19]


async def test_a_round_counts_jobs_per_node_and_names_the_shorter_node_list_however_many_nodes_are_full() -> None:
    """Free slots come from per-node counts (no listing of the jobs on nodes), and the
    selector is told the nodes that may take a job or those that may not, whichever list
    is shorter: 1,100 full nodes (above the 1,000 a request once allowed) leave the one
    free node to be named, and a mostly free cluster names its few full nodes."""
    full = [node(f"n{i:04d}", slots=1) for i in range(1100)]
    jobs, store, agents, _, _ = _cluster(*full, node("zfree", slots=1))  # ranked last
    placement = jobs._placement
    for _ in range(11):  # rounds of 100 keep each step of the loop short
        await jobs.submit([(Spec("sleep"), "") for _ in range(100)])
        assert (await jobs.dispatch(100, epoch=1))[0] == 100
    listed = 0
    on_nodes = store.on_nodes

    async def counted():
        nonlocal listed
        listed += 1
        return await on_nodes()

    store.on_nodes = counted
    placement.calls.clear()
    await jobs.submit([(Spec("sleep"), "") for _ in range(3)])
    assert await jobs.dispatch(1000, epoch=1) == (1, 2)
    assert agents.runs[-1][0] == "zfree" and listed == 0  # counted, not listed
    assert placement.calls == [("sleep", 1, [], ["zfree"])]
    # Mostly free: the few full nodes are the shorter list.
    jobs, _, _, _, _ = _cluster(*(node(f"m{i}", slots=1) for i in range(10)))
    await jobs.submit([(Spec("sleep"), "") for _ in range(2)])
    await jobs.dispatch(1000, epoch=1)
    jobs._placement.calls.clear()
    await jobs.submit([(Spec("sleep"), "")])
    assert await jobs.dispatch(1000, epoch=1) == (1, 0)
    ((kind, k, exclude, only),) = jobs._placement.calls
    assert (kind, k, len(exclude), only) == ("sleep", 1, 2, None)


async def test_a_named_job_is_dispatched_wherever_it_stands_in_the_backlog() -> None:
    """SpawnJob's dispatch reads its job by id: 1,200 older jobs ahead of it (more than
    one listing holds) do not hide it."""
    jobs, store, agents, _, _ = _cluster(node("a", slots=1))
    await jobs.submit([(Spec("sleep"), "") for _ in range(1200)])
    ((job, _),) = await jobs.submit([(Spec("echo", params={"message": "m"}), "")])
    assert job.job_id not in {j.job_id for j in await store.dispatchable(1000)}
    assert await jobs.dispatch(1000, epoch=1, only={job.job_id}) == (1, 0)
    assert [job_id for _, job_id, *_ in agents.runs] == [job.job_id]


async def test_gpu_jobs_are_spread_over_the_gpus_of_a_node() -> None:
    jobs, _, agents, _, _ = _cluster(node("a", slots=4, gpus=2))
    spec = Spec("sleep", needs_gpu=True)
    await jobs.submit([(spec, ""), (spec, ""), (spec, "")])
    await jobs.dispatch(10, epoch=1)
    assert sorted(tuple(g) for *_, g in agents.runs) == [(0,), (0,), (1,)]


async def test_top_ups_wait_for_the_node_cooldown() -> None:
    settings = JobSettings(dispatch_cooldown_seconds=120)
    jobs, _, agents, _, clock = _cluster(node("a", slots=10), settings=settings)
    await jobs.submit([(Spec("sleep", top_up=True), "")])
    await jobs.dispatch(10, epoch=1)
    await jobs.submit([(Spec("sleep", top_up=True), "")])
    assert await jobs.dispatch(10, epoch=1) == (0, 1)
    clock.advance(121)
    assert await jobs.dispatch(10, epoch=1) == (1, 0)
    assert len(agents.runs) == 2


async def test_an_agent_that_refuses_the_job_fails_it_for_good_and_an_unreachable_one_leaves_it_to_verification() -> (
    None
):
    jobs, store, agents, _, _ = _cluster(node("a", slots=1), node("b", slots=1))
    agents.fail_with = {"a": InvalidArgument.field("spec.params[x]", "bad"), "b": DependencyUnavailable("down")}
    (a, _), (b, _) = await jobs.submit([(Spec("sleep"), ""), (Spec("sleep"), "")])
    await jobs.dispatch(10, epoch=1)
    refused, unreachable = await store.get(a.job_id), await store.get(b.job_id)
    assert refused.state == JobState.FAILED
    assert unreachable.state == JobState.SCHEDULED


async def test_a_stale_epoch_from_an_agent_ends_the_dispatch_round() -> None:
    jobs, store, agents, _, _ = _cluster(node("a"))
    store.advance_epoch(3)
    agents.fail_with = {"a": StaleEpoch(received=3, highest=9)}
    await jobs.submit([(Spec("sleep"), "")])
    with pytest.raises(StaleEpoch):
        await jobs.dispatch(10, epoch=3)


async def test_reaping_loses_jobs_of_departed_nodes_retries_unverified_ones_and_fails_timed_out_ones() -> None:
    settings = JobSettings(spawn_verification_seconds=30, max_reaps_per_node=10)
    jobs, store, agents, members, clock = _cluster(node("a", 1), node("b", 1), node("c", 1), settings=settings)
    (lost, _), (late, _), (slow, _) = await jobs.submit(
        [(Spec("sleep"), ""), (Spec("sleep"), ""), (Spec("sleep", timeout_seconds=60), "")]
    )
    await jobs.dispatch(10, epoch=1)
    placed = {job_id: n for n, job_id, *_ in agents.runs}
    await jobs.report(Report(slow.job_id, 1, placed[slow.job_id], JobState.RUNNING))
    await jobs.report(Report(lost.job_id, 1, placed[lost.job_id], JobState.RUNNING))
    del members.members[placed[lost.job_id]]
    clock.advance(61)
    assert await jobs.reap(epoch=1) == (1, 1, 1)
    assert (await store.get(lost.job_id)).state == JobState.PENDING  # retried: attempt 2
    assert (await store.get(lost.job_id)).attempt == 2
    assert (await store.get(late.job_id)).attempt == 2
    assert (await store.get(slow.job_id)).state == JobState.FAILED
    assert placed == {lost.job_id: "a", late.job_id: "b", slow.job_id: "c"}
    assert sorted(agents.cancels) == sorted([("b", late.job_id, 1, 1), ("c", slow.job_id, 1, 1)])


async def test_reaping_acts_on_at_most_the_limit_per_node_a_round() -> None:
    settings = JobSettings(max_reaps_per_node=2)
    jobs, _store, _, members, _ = _cluster(node("a", slots=5), settings=settings)
    await jobs.submit([(Spec("sleep"), "") for _ in range(5)])
    await jobs.dispatch(10, epoch=1)
    members.members.clear()
    assert await jobs.reap(epoch=1) == (2, 0, 0)
    assert await jobs.reap(epoch=1) == (2, 0, 0)


async def test_a_failure_report_retries_with_backoff_until_the_attempts_run_out() -> None:
    settings = JobSettings(max_attempts=2, retry_backoff_base_seconds=30)
    jobs, store, _agents, _, clock = _cluster(node("a"), settings=settings)
    ((job, _),) = await jobs.submit([(Spec("sleep"), "")])
    await jobs.dispatch(10, epoch=1)
    assert await jobs.report(Report(job.job_id, 1, "a", JobState.FAILED, exit_code=3, error="boom"))
    assert (await store.get(job.job_id)).attempt == 2
    assert await jobs.dispatch(10, epoch=1) == (0, 0)  # backing off
    clock.advance(31)
    assert (await jobs.dispatch(10, epoch=1))[0] == 1
    assert await jobs.report(Report(job.job_id, 2, "a", JobState.FAILED, exit_code=3))
    final = await store.get(job.job_id)
    assert (final.state, final.attempt) == (JobState.FAILED, 2)
    assert not await jobs.report(Report(job.job_id, 1, "a", JobState.SUCCEEDED))  # a superseded attempt


async def test_a_running_attempt_the_job_moved_on_from_is_superseded() -> None:
    settings = JobSettings(max_attempts=3, retry_backoff_base_seconds=0)
    jobs, store, _agents, members, _ = _cluster(node("a"), node("b"), settings=settings)
    ((job, _),) = await jobs.submit([(Spec("sleep"), "")])
    await jobs.dispatch(10, epoch=1)
    first = await store.get(job.job_id)
    running = Report(job.job_id, 1, first.node_id, JobState.RUNNING)
    assert await jobs.report(running) and not await jobs.superseded(running)
    assert not await jobs.report(running) and not await jobs.superseded(running)  # a duplicate: still current
    del members.members[first.node_id]  # its node left: lost, retried on the other
    assert (await jobs.reap(epoch=1))[0] == 1 and (await store.get(job.job_id)).attempt == 2
    assert not await jobs.report(running) and await jobs.superseded(running)
    await jobs.cancel(job.job_id, "no longer needed")
    again = Report(job.job_id, 2, "b", JobState.RUNNING)
    assert await jobs.superseded(again)  # the job ended
    assert await jobs.superseded(Report("no-such-job", 1, "a", JobState.RUNNING))


async def test_reports_of_states_agents_do_not_send_are_refused() -> None:
    jobs, *_ = _cluster(node("a"))
    with pytest.raises(InvalidArgument):
        await jobs.report(Report("J1", 1, "a", JobState.SCHEDULED))


async def test_cancel_stops_the_job_on_its_node_and_leaves_an_ended_job_alone() -> None:
    jobs, store, agents, _, _ = _cluster(node("a"))
    store.advance_epoch(4)  # the leader registered its epoch
    ((job, _),) = await jobs.submit([(Spec("sleep"), "")])
    await jobs.dispatch(10, epoch=4)
    cancelled = await jobs.cancel(job.job_id, "operator")
    assert cancelled.state == JobState.CANCELLED
    assert agents.cancels == [("a", job.job_id, 1, 4)]
    assert (await jobs.cancel(job.job_id, "again")).state == JobState.CANCELLED
    assert len(agents.cancels) == 1


async def test_logs_come_from_the_node_that_ran_the_attempt() -> None:
    jobs, *_ = _cluster(node("a"))
    ((job, _),) = await jobs.submit([(Spec("sleep"), "")])
    await jobs.dispatch(10, epoch=1)
    chunks = [c.data async for c in jobs.logs(job.job_id, 0, follow=False)]
    assert chunks == [f"a:{job.job_id}:1".encode()]


async def test_following_a_pending_job_waits_until_its_agent_holds_it_without_asking_again_and_again() -> None:
    jobs, store, *_ = _cluster(node("a"))
    ((job, _),) = await jobs.submit([(Spec("sleep"), "")])
    reads = record_calls(store, "get")
    following = asyncio.create_task(anext(jobs.logs(job.job_id, 0, follow=True)))
    await until("the follower waits on the job's events", lambda: len(reads) == 2)
    await jobs.submit([(Spec("sleep"), "")])  # another job's event: looked at by nobody
    await asyncio.sleep(0.01)
    assert not following.done() and len(reads) == 2
    await jobs.dispatch(10, epoch=1)  # placed on "a" and handed to it: the node's output follows
    assert (await asyncio.wait_for(following, 5)).data == f"a:{job.job_id}:1".encode()
    assert len(reads) == 4  # the first read, the read after the event head, one at each event: SCHEDULED, STARTING

    ((other, _),) = await jobs.submit([(Spec("sleep"), "")])
    waiting = asyncio.create_task(anext(jobs.logs(other.job_id, 0, follow=True)))
    await asyncio.sleep(0.01)
    await jobs.cancel(other.job_id, "operator")  # ended without a node: nothing to follow
    with pytest.raises(NotFound, match="has not been placed"):
        await asyncio.wait_for(waiting, 5)
    with pytest.raises(NotFound, match="has not been placed"):  # not following: no wait
        await anext(jobs.logs((await jobs.submit([(Spec("sleep"), "")]))[0][0].job_id, 0, follow=False))


def test_selfplay_games_are_split_evenly_over_the_runners() -> None:
    jobs, *_ = _cluster(Node("a", "a:1", frozenset({"selfplay"})), Node("b", "b:1", frozenset({"selfplay"})))
    assert jobs.selfplay_shares(101, 0) == [51, 50]
    assert jobs.selfplay_shares(101, 1) == [101]
    assert jobs.selfplay_shares(1, 0) == [1]


async def test_a_malformed_traceparent_is_refused_naming_the_field_and_queues_nothing() -> None:
    jobs, store, *_ = _cluster(node("a"))
    long_value = "00-" + "f" * 5000
    for bad in ("garbage", "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", long_value):
        with pytest.raises(InvalidArgument) as caught:
            await jobs.submit([(Spec("echo", params={"message": "hi"}, traceparent=bad), "")])
        assert [v.field for v in caught.value.violations] == ["spec.traceparent"]
        assert long_value[:100] not in caught.value.message  # the value is not echoed back
    assert await store.dispatchable(10) == []
    good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    ((job, created),) = await jobs.submit([(Spec("echo", params={"message": "hi"}, traceparent=good), "")])
    assert created and job.spec.traceparent == good


async def test_a_report_that_fails_to_commit_leaves_its_starting_to_be_written_later() -> None:
    """StateService unavailable for the report that took STARTING along: the report fails
    (the agent's outbox sends it again) and STARTING is not lost: written after the delay,
    so the attempt still has its JOB_STARTED."""
    jobs, store, _, _, _ = _cluster(node("a"), settings=JobSettings(starting_write_delay_seconds=0.02))
    ((job, _),) = await jobs.submit([(Spec("sleep"), "")])
    await jobs.dispatch(10, epoch=1)
    transition = store.transition
    failures = [DependencyUnavailable("StateService is restarting")]

    async def flaky(transitions, epoch=0, with_jobs=False):
        if failures:
            raise failures.pop()
        return await transition(transitions, epoch, with_jobs)

    store.transition = flaky
    batches = record_batches(store)
    with pytest.raises(DependencyUnavailable):
        await jobs.report(Report(job.job_id, 1, "a", JobState.SUCCEEDED, reported_by="a"))
    await asyncio.sleep(0.1)
    assert (await store.get(job.job_id)).state == JobState.STARTING
    assert await jobs.report(Report(job.job_id, 1, "a", JobState.SUCCEEDED, reported_by="a"))  # the outbox's retry
    assert [b for b in batches if b] == [
        [(job.job_id, JobState.STARTING), (job.job_id, JobState.SUCCEEDED)],
        [(job.job_id, JobState.STARTING)],
        [(job.job_id, JobState.SUCCEEDED)],
    ]


async def test_a_round_says_whether_it_saw_and_placed_the_whole_backlog() -> None:
    """backlog_empty (DispatchPendingJobs): every dispatchable job was listed and placed,
    so a slot freed later gives a round nothing to do."""
    jobs, _, _, _, _ = _cluster(node("a", slots=2))
    await jobs.dispatch(10, epoch=1)
    assert jobs.backlog_empty  # nothing pending at all
    await jobs.submit([(Spec("sleep"), "") for _ in range(3)])
    assert await jobs.dispatch(10, epoch=1) == (2, 1)
    assert not jobs.backlog_empty  # one waits for a slot
    jobs, _, _, _, _ = _cluster(node("a", slots=4))
    await jobs.submit([(Spec("sleep"), "") for _ in range(3)])
    assert await jobs.dispatch(10, epoch=1) == (3, 0)
    assert jobs.backlog_empty
    jobs, _, _, _, _ = _cluster(node("a", slots=LOOK_AHEAD_MIN))
    await jobs.submit([(Spec("sleep"), "") for _ in range(LOOK_AHEAD_MIN)])
    assert await jobs.dispatch(LOOK_AHEAD_MIN, epoch=1) == (LOOK_AHEAD_MIN, 0)
    assert not jobs.backlog_empty  # a full listing: more may be behind it
