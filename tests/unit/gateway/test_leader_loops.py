"""The leader's background loops (LoopManager) on fakes: a failing round is retried with
backoff, only a stale epoch or a lost lease ends the term, nothing runs without a
confirmed lease, loops start in dependency order, health turns degraded after five
errors in a row, pauses are stored (a new leader starts with them) and cancelling the
term stops every loop at once."""

from __future__ import annotations

import asyncio
import random

import pytest

from ringrift_gateway.domain.leader import LeaderDuties
from ringrift_gateway.domain.loops import Loop, LoopManager, LoopStatus, backoff_delay, start_order
from ringrift_gateway.domain.loops.jobs import DispatchWakes, JobDispatcher
from ringrift_gateway.domain.ports import EventView
from ringrift_runtime.cluster.election import Leadership
from ringrift_runtime.errors import NotFound, NotLeader, RingriftError, StaleEpoch
from ringrift_settings import GatewaySettings
from tests.polling import until


class Keeper:
    def __init__(self) -> None:
        self.alive = True

    def valid(self) -> bool:
        return self.alive


class Counter:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def labels(self, outcome: str):
        counter = self

        class _Inc:
            def inc(self) -> None:
                counter.counts[outcome] = counter.counts.get(outcome, 0) + 1

        return _Inc()


class MemoryPauses:
    def __init__(self) -> None:
        self.names: set[str] = set()

    async def load(self) -> set[str]:
        return set(self.names)

    async def set(self, name: str, paused: bool) -> set[str]:
        self.names = self.names | {name} if paused else self.names - {name}
        return set(self.names)


def manager(loops: list[Loop], pauses: MemoryPauses | None = None) -> LoopManager:
    return LoopManager(loops, pauses or MemoryPauses(), rng=random.Random(1), backoff_base=0.001)


class EpochRecord:
    def __init__(self, epoch: int, leader_id: str) -> None:
        self.epoch, self.leader_id = epoch, leader_id


class IssuedEpochs:
    """StateService as LeaderDuties asks it whether a stale answer is genuine."""

    def __init__(self, epoch: int, leader_id: str) -> None:
        self.record = EpochRecord(epoch, leader_id)

    async def get_epoch(self) -> EpochRecord:
        return self.record


def run_as_leader(loops: LoopManager, leadership: Leadership, acts: Counter, issued: IssuedEpochs | None = None):
    duties = LeaderDuties(issued or IssuedEpochs(5, "gw-2"), None, "gw", GatewaySettings(), acts, loops)
    return loops.run(lambda what, operation: duties.act(leadership, what, operation), leadership.epoch)


async def test_failures_are_retried_and_a_stale_epoch_ends_the_term() -> None:
    acts, calls = Counter(), []
    outcomes = [RingriftError("internal"), None, StaleEpoch(3, 5)]

    async def operation(epoch: int) -> None:
        calls.append(epoch)
        outcome = outcomes[len(calls) - 1]
        if outcome is not None:
            raise outcome

    leadership = Leadership(3, "gw", Keeper())
    loops = manager([Loop("JobDispatcher", 0.01, operation)])
    with pytest.raises(StaleEpoch):
        await asyncio.wait_for(run_as_leader(loops, leadership, acts), 5)
    assert calls == [3, 3, 3] and leadership.deposed
    assert acts.counts == {"accepted": 1, "stale": 1}
    assert loops.records["JobDispatcher"].health == "STOPPED"  # the term is over


async def test_a_stale_answer_naming_an_epoch_never_issued_does_not_end_the_term() -> None:
    """A peer (say a compromised agent) answering STALE_EPOCH with a made-up epoch must
    not depose a leader whose epoch StateService still holds as the current one."""
    acts, calls = Counter(), []

    async def operation(epoch: int) -> None:
        calls.append(epoch)
        if len(calls) <= 2:
            raise StaleEpoch(3, 10**9)

    leadership = Leadership(3, "gw", Keeper())
    loops = manager([Loop("JobDispatcher", 0.01, operation)])
    task = asyncio.ensure_future(run_as_leader(loops, leadership, acts, IssuedEpochs(3, "gw")))
    for _ in range(500):
        if len(calls) >= 4:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(calls) >= 4 and not leadership.deposed  # kept leading and kept running
    assert acts.counts["stale"] == 2 and acts.counts["accepted"] >= 2


async def test_nothing_runs_without_a_confirmed_lease() -> None:
    keeper, calls = Keeper(), []

    async def operation(epoch: int) -> None:
        calls.append(epoch)

    keeper.alive = False
    with pytest.raises(NotLeader):
        await asyncio.wait_for(
            run_as_leader(manager([Loop("JobReaper", 0.01, operation)]), Leadership(3, "gw", keeper), Counter()), 5
        )
    assert calls == []


def test_backoff_grows_by_half_up_to_the_cap_with_jitter_and_never_below_the_interval() -> None:
    rng = random.Random(7)
    assert backoff_delay(0, 60, rng) == 60  # no error: the interval
    for errors, nominal in [(1, 1.0), (2, 1.5), (3, 2.25), (5, 5.0625), (20, 300.0)]:
        delay = backoff_delay(errors, 0.1, rng)
        assert min(nominal * 0.8, 300) <= delay <= min(nominal * 1.2, 300), (errors, delay)
    assert backoff_delay(40, 0.1, rng) <= 300  # capped after jitter too
    assert backoff_delay(1, 30, rng) == 30  # an error never makes a loop run faster


def test_start_order_follows_dependencies_and_refuses_cycles() -> None:
    async def op(epoch: int) -> None:
        return None

    loops = [
        Loop("Trigger", 1, op, after=("Counter",)),
        Loop("Counter", 1, op),
        Loop("Idle", 1, op, after=("Queue",)),
        Loop("Queue", 1, op, after=("Dispatch",)),
        Loop("Dispatch", 1, op),
    ]
    names = [l.name for l in start_order(loops)]
    assert names.index("Counter") < names.index("Trigger")
    assert names.index("Dispatch") < names.index("Queue") < names.index("Idle")
    with pytest.raises(ValueError, match="cycle"):
        start_order([Loop("A", 1, op, after=("B",)), Loop("B", 1, op, after=("A",))])
    with pytest.raises(ValueError, match="unknown loop"):
        start_order([Loop("A", 1, op, after=("Nope",))])


async def test_a_loop_starts_after_the_first_round_of_the_loops_it_runs_after() -> None:
    order: list[str] = []
    counted = asyncio.Event()

    async def count(epoch: int) -> None:
        await asyncio.sleep(0.05)
        order.append("GameCounter")
        counted.set()

    async def trigger(epoch: int) -> None:
        order.append("TrainingTrigger")

    loops = manager([Loop("TrainingTrigger", 10, trigger, after=("GameCounter",)), Loop("GameCounter", 10, count)])
    task = asyncio.create_task(run_as_leader(loops, Leadership(1, "gw", Keeper()), Counter()))
    while len(order) < 2:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert order == ["GameCounter", "TrainingTrigger"]


async def test_health_degrades_after_five_errors_in_a_row_and_recovers() -> None:
    calls = []

    async def flaky(epoch: int) -> None:
        calls.append(epoch)
        if len(calls) <= 5:
            raise RingriftError("dependency down")

    loops = manager([Loop("DataSync", 0.001, flaky)])
    seen = []
    task = asyncio.create_task(run_as_leader(loops, Leadership(1, "gw", Keeper()), Counter()))
    while len(calls) < 7:
        seen.append(loops.records["DataSync"].health)
        await asyncio.sleep(0.001)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert "DEGRADED" in seen
    record = loops.records["DataSync"]
    assert record.consecutive_errors == 0 and record.last_error == "" and record.runs >= 6
    assert record.health == "STOPPED"  # cancelled with the term: stopped at once


async def test_a_paused_loop_does_not_run_and_a_new_leader_keeps_it_paused() -> None:
    runs: dict[str, int] = {"EloSync": 0, "JobReaper": 0}

    def counting(name):
        async def op(epoch: int) -> None:
            runs[name] += 1

        return op

    pauses = MemoryPauses()
    first = manager(
        [Loop("EloSync", 0.01, counting("EloSync")), Loop("JobReaper", 0.01, counting("JobReaper"))], pauses
    )
    with pytest.raises(NotFound, match="loops are: EloSync, JobReaper"):
        await first.set_paused("Nope", True)
    answer = await first.set_paused("EloSync", True)  # taken while not leading: stored, reported paused
    assert answer.health == "PAUSED" and pauses.names == {"EloSync"}

    # A new leader (another replica's manager over the same store) starts with it paused.
    second = manager(
        [Loop("EloSync", 0.01, counting("EloSync")), Loop("JobReaper", 0.01, counting("JobReaper"))], pauses
    )
    task = asyncio.create_task(run_as_leader(second, Leadership(2, "gw2", Keeper()), Counter()))
    while runs["JobReaper"] < 5:
        await asyncio.sleep(0.01)
    assert runs["EloSync"] == 0 and second.records["EloSync"].health == "PAUSED"
    resumed = await second.set_paused("EloSync", False)
    assert resumed.health == "HEALTHY" and pauses.names == set()
    while runs["EloSync"] < 1:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_wake_runs_a_loop_at_once_and_one_during_a_round_is_not_lost() -> None:
    """JobDispatcher's interval is only a safety round: a wake (a job event) runs it at
    once; a wake that arrives while a round runs gets one more round right after it, and
    wakes that pile up during a round cost one round, not one each."""
    rounds: list[int] = []
    release = asyncio.Event()

    async def dispatch(epoch: int) -> None:
        rounds.append(epoch)
        if len(rounds) == 2:
            await release.wait()  # a slow round; wakes arrive meanwhile

    async def until(count: int) -> None:
        while len(rounds) < count:
            await asyncio.sleep(0.005)

    loops = manager([Loop("JobDispatcher", 3600, dispatch)])
    loops.wake("JobDispatcher")  # not leading yet: nothing to wake, no error
    task = asyncio.create_task(run_as_leader(loops, Leadership(1, "gw", Keeper()), Counter()))
    await asyncio.wait_for(until(1), 5)  # the first round, at the start of the term
    loops.wake("JobDispatcher")
    await asyncio.wait_for(until(2), 5)  # not an hour later
    for _ in range(3):
        loops.wake("JobDispatcher")
    loops.wake("NoSuchLoop")
    release.set()
    await asyncio.wait_for(until(3), 5)
    await asyncio.sleep(0.1)
    assert len(rounds) == 3  # the three wakes during the slow round cost one round
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_wakes_of_a_paused_loop_do_not_spin_it_and_a_resume_runs_it_at_once() -> None:
    runs: list[int] = []

    async def dispatch(epoch: int) -> None:
        runs.append(epoch)

    pauses = MemoryPauses()
    pauses.names = {"JobDispatcher"}
    loops = manager([Loop("JobDispatcher", 3600, dispatch)], pauses)
    sleeps = 0
    sleep = loops._sleep

    async def counting_sleep(name: str, seconds: float) -> None:
        nonlocal sleeps
        sleeps += 1
        await sleep(name, seconds)

    loops._sleep = counting_sleep  # type: ignore[method-assign]
    task = asyncio.create_task(run_as_leader(loops, Leadership(1, "gw", Keeper()), Counter()))
    await asyncio.sleep(0.05)
    for _ in range(50):
        loops.wake("JobDispatcher")
        await asyncio.sleep(0.001)
    await asyncio.sleep(0.2)
    assert runs == [] and sleeps <= 60, sleeps  # paused: each wake costs a look at most, never a spin
    await loops.set_paused("JobDispatcher", False)
    await until(
        "the loop resumed", lambda: len(runs) == 1, timeout=5, interval=0.005
    )  # resumed: at once, not an hour later
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


class HeldEpochs(IssuedEpochs):
    """StateService that has not answered the new leader's epoch claim yet."""

    def __init__(self) -> None:
        super().__init__(5, "gw")
        self.answer = asyncio.Event()

    async def claim_epoch(self, leader_key: str) -> tuple[int, int]:
        await self.answer.wait()
        return 6, 5


async def test_a_new_leaders_loops_show_starting_until_they_run_and_stopped_when_the_term_ends_first() -> None:
    """Between winning the election and starting its loops (claiming the epoch, announcing
    itself, recording members) a leader's status says its loops are starting, not stopped;
    a term that ends in between leaves them stopped."""

    async def operation(epoch: int) -> None:
        return None

    loops = manager([Loop("JobDispatcher", 0.01, operation)])
    assert loops.records["JobDispatcher"].health == "STOPPED"
    duties = LeaderDuties(HeldEpochs(), None, "gw", GatewaySettings(), Counter(), loops)
    term = asyncio.create_task(duties.lead(Leadership(0, "gw", Keeper())))
    await asyncio.sleep(0.05)
    (status,) = loops.statuses()
    assert status.health == "STARTING"
    assert LoopStatus.from_json(status.to_json()).health == "STARTING"  # as the other replicas see it
    term.cancel()
    with pytest.raises(asyncio.CancelledError):
        await term
    assert loops.records["JobDispatcher"].health == "STOPPED"


class Wakes:
    """LoopManager as DispatchWakes sees it: whether it leads, and the wakes it got."""

    def __init__(self, leading: bool = True) -> None:
        self.leading = leading
        self.woken: list[str] = []

    def wake(self, name: str) -> None:
        self.woken.append(name)


def test_a_submission_through_the_leader_wakes_dispatch_once_and_its_event_not_again() -> None:
    """A job submitted through the leading replica wakes JobDispatcher at once; its
    JOB_SUBMITTED event, when it comes back, wakes nothing more. Every other dispatch
    event (a job submitted through another replica, an ending job) wakes it."""
    loops = Wakes()
    wakes = DispatchWakes(loops)
    wakes.submitted(["job-a", "job-b"])
    assert loops.woken == ["JobDispatcher"]  # once for the batch
    wakes.event("JOB_SUBMITTED", "job-a")
    wakes.event("JOB_SUBMITTED", "job-b")
    assert loops.woken == ["JobDispatcher"]
    wakes.event("JOB_SUBMITTED", "job-a")  # seen already: a repeat wakes (it may be a new job of that id)
    wakes.event("JOB_SUBMITTED", "job-c")  # through the other replica
    wakes.event("JOB_SUCCEEDED", "job-b")  # a slot freed
    assert loops.woken == ["JobDispatcher"] * 4
    wakes.submitted([])  # nothing created (idempotency keys found the jobs): no round
    assert len(loops.woken) == 4


def test_a_replica_that_does_not_lead_neither_wakes_nor_remembers_submissions() -> None:
    loops = Wakes(leading=False)
    wakes = DispatchWakes(loops)
    wakes.submitted(["job-a"])
    assert loops.woken == []
    loops.leading = True  # it leads by the time the event comes: the event wakes it
    wakes.event("JOB_SUBMITTED", "job-a")
    assert loops.woken == ["JobDispatcher"]


def test_submissions_whose_events_never_come_are_forgotten_oldest_first() -> None:
    loops = Wakes()
    wakes = DispatchWakes(loops, remember=2)
    for job_id in ("job-a", "job-b", "job-c"):
        wakes.submitted([job_id])
    wakes.event("JOB_SUBMITTED", "job-a")  # forgotten: it wakes
    wakes.event("JOB_SUBMITTED", "job-c")  # remembered: it does not
    assert len(loops.woken) == 4


class EventStream(IssuedEpochs):
    """StateService's event stream as the leader follows it."""

    def __init__(self, events: list[EventView]) -> None:
        super().__init__(5, "gw")
        self.events = events
        self.types: list[str] = []

    async def follow_events(self, types: list[str]):
        self.types = types
        for event in self.events:
            yield event
        await asyncio.Event().wait()  # the stream stays open


async def test_the_leader_follows_job_events_into_dispatch_wakes() -> None:
    loops = Wakes()
    wakes = DispatchWakes(loops)
    wakes.submitted(["job-a"])
    stream = EventStream([EventView(1, "JOB_SUBMITTED", "job-a"), EventView(2, "JOB_SUBMITTED", "job-b")])
    duties = LeaderDuties(stream, None, "gw", GatewaySettings(), Counter(), loops, wakes)  # type: ignore[arg-type]
    task = asyncio.create_task(duties._dispatch_on_events())
    await until("both loops woken", lambda: len(loops.woken) == 2, timeout=5, interval=0.005)
    assert set(stream.types) >= {"JOB_SUBMITTED", "JOB_SUCCEEDED", "JOB_RETRIED"}
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_a_freed_slot_wakes_dispatch_only_when_jobs_may_wait_for_one() -> None:
    """After a round that found the backlog empty, an ending job wakes nothing (that round
    would list the backlog for nothing); a submission or a retry makes it wake again."""
    loops = Wakes()
    wakes = DispatchWakes(loops)
    wakes.event("JOB_SUCCEEDED", "job-a")  # nothing known of the backlog yet: it wakes
    assert len(loops.woken) == 1
    wakes.round_done(backlog_empty=True)
    wakes.event("JOB_SUCCEEDED", "job-b")
    wakes.event("JOB_LOST", "job-c")
    assert len(loops.woken) == 1
    wakes.event("JOB_RETRIED", "job-c")  # new work: it wakes, and slots matter again
    wakes.event("JOB_FAILED", "job-d")
    assert len(loops.woken) == 3
    wakes.round_done(backlog_empty=True)
    wakes.submitted(["job-e"])  # through this replica
    wakes.event("JOB_CANCELLED", "job-f")
    assert len(loops.woken) == 5
    wakes.round_done(backlog_empty=False)  # jobs wait for slots
    wakes.event("JOB_SUCCEEDED", "job-g")
    assert len(loops.woken) == 6


async def test_each_dispatch_round_tells_the_wakes_what_it_found() -> None:
    class Rounds:
        def __init__(self) -> None:
            self.replies = [True, False]

        async def dispatch(self, epoch: int):
            class Reply:
                backlog_empty = self.replies.pop(0)

            return Reply()

    loops = Wakes()
    wakes = DispatchWakes(loops)
    dispatcher = JobDispatcher(Rounds(), wakes)
    await dispatcher(1)
    wakes.event("JOB_SUCCEEDED", "job-a")
    assert loops.woken == []
    await dispatcher(1)
    wakes.event("JOB_SUCCEEDED", "job-b")
    assert loops.woken == ["JobDispatcher"]
