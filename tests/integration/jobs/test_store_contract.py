"""One contract for JobService's job store, run against the real adapter (StateService
as a process over gRPC) and the in-memory fake the lifecycle's unit tests use."""

from __future__ import annotations

import asyncio
from contextlib import aclosing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ringrift.state.v1 import state_pb2, state_pb2_grpc
from ringrift_contracts.jobs import JobState
from ringrift_jobs.adapters.state import StateJobStore
from ringrift_jobs.adapters.wire import spec_message
from ringrift_jobs.domain.model import Spec, Transition
from ringrift_runtime.cluster.etcd import ETCD_IDENTITY
from ringrift_runtime.errors import NotFound, StaleEpoch, WrongState
from ringrift_runtime.local.etcd import EtcdServer
from ringrift_runtime.local.processes import ServiceProcess
from ringrift_runtime.security.identity import gateway, service
from ringrift_runtime.testing.pki import TestPki
from tests.callers import drop_leader_key, hold_leader_key
from tests.fakes.jobs import FakeJobStore

S = JobState


@pytest.fixture(params=["fake", "state"])
async def store(request, tmp_path: Path, pki: TestPki):
    """(store, advance_epoch) of each kind."""
    if request.param == "fake":
        fake = FakeJobStore()

        async def advance_fake(epoch: int) -> None:
            fake.advance_epoch(epoch)

        yield fake, advance_fake
        return
    etcd = EtcdServer(tmp_path / "etcd", tls=pki.files(service(ETCD_IDENTITY, "test")), client=pki.files(pki.admin()))
    await asyncio.to_thread(etcd.start)
    process = ServiceProcess(
        "state",
        tmp_path,
        env={
            **pki.env(service("state", "test")),
            "RINGRIFT_ETCD__ENDPOINTS": f'["{etcd.endpoint}"]',
            "RINGRIFT_STATE__DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'state.db'}",
            "RINGRIFT_METRICS__ENABLED": "false",
            "RINGRIFT_ETCD__REGISTER_SERVICE": "false",
        },
    )
    await asyncio.to_thread(process.start)
    settings = pki.etcd_settings(etcd.endpoint)
    try:
        async with (
            pki.channel(process.address, "state", service("jobs", "test")) as channel,
            pki.channel(process.address, "state", gateway("gw", "test")) as leader_channel,
        ):
            leader = state_pb2_grpc.StateServiceStub(leader_channel)

            async def advance_real(epoch: int) -> None:
                """Terms pass (each a new election key, claimed) until ``epoch`` is issued."""
                current = (await leader.GetClusterEpoch(state_pb2.GetClusterEpochRequest())).epoch
                for _ in range(current, epoch):
                    key, lease = await hold_leader_key(settings, "gw")
                    await leader.ClaimEpoch(state_pb2.ClaimEpochRequest(leader_key=key))
                    await drop_leader_key(settings, lease)

            yield StateJobStore(channel), advance_real
    finally:
        await asyncio.to_thread(process.stop)
        await asyncio.to_thread(etcd.stop)


def spec(kind: str = "sleep", **fields) -> Spec:
    value = Spec(kind, **fields)
    return Spec(value.kind, value.config_key, value.params, needs_gpu=value.needs_gpu, wire=spec_message(value))


async def test_created_jobs_are_pending_and_an_idempotency_key_returns_the_first(store) -> None:
    jobs, _ = store
    ((first, created), (plain, _)) = await jobs.create([(spec(), "key-1"), (spec("echo"), "")])
    assert created and (first.state, first.attempt, first.node_id) == (S.PENDING, 1, "")
    ((again, created_again),) = await jobs.create([(spec(), "key-1")])
    assert (again.job_id, created_again) == (first.job_id, False)
    assert (await jobs.get(plain.job_id)).spec.kind == "echo"
    with pytest.raises(NotFound):
        await jobs.get("NO-SUCH-JOB")


async def test_the_events_about_a_job_after_the_head_are_watched_and_no_others(store) -> None:
    jobs, _ = store
    (watched, _), (other, _) = await jobs.create([(spec(), ""), (spec(), "")])
    head = await jobs.event_head()
    assert head >= 2  # a creation appends an event
    seen: list[int] = []

    async def watch() -> None:
        async with aclosing(jobs.job_events(watched.job_id, head)) as events:
            async for sequence in events:
                seen.append(sequence)
                if len(seen) == 2:
                    return

    watching = asyncio.create_task(watch())
    await jobs.transition([Transition(other.job_id, 1, S.SCHEDULED, from_state=S.PENDING, node_id="n1")])
    await jobs.transition([Transition(watched.job_id, 1, S.SCHEDULED, from_state=S.PENDING, node_id="n1")])
    await jobs.transition([Transition(watched.job_id, 1, S.STARTING, from_state=S.SCHEDULED)])
    await asyncio.wait_for(watching, 10)
    assert seen == [head + 2, head + 3] and await jobs.event_head() == head + 3  # not the other job's
    async with aclosing(jobs.job_events(watched.job_id, 0)) as events:  # from the start: its creation too
        assert await anext(events) <= head


async def test_dispatchable_jobs_are_the_pending_ones_up_to_the_limit(store) -> None:
    jobs, _ = store
    created = {job.job_id for job, _ in await jobs.create([(spec(), "") for _ in range(3)])}
    first_two = {j.job_id for j in await jobs.dispatchable(2)}
    assert len(first_two) == 2 and first_two <= created
    placed = min(first_two)
    await jobs.transition([Transition(placed, 1, S.SCHEDULED, from_state=S.PENDING, node_id="n1")])
    assert {j.job_id for j in await jobs.dispatchable(10)} == created - {placed}
    (on_node,) = await jobs.on_nodes()
    assert (on_node.job_id, on_node.state, on_node.node_id) == (placed, S.SCHEDULED, "n1")


async def test_jobs_on_nodes_are_counted_per_node_with_their_gpu_jobs(store) -> None:
    jobs, _ = store
    created = [job for job, _ in await jobs.create([(spec(needs_gpu=n % 2 == 0), "") for n in range(6)])]
    assert await jobs.node_counts() == {}  # pending jobs are on no node
    placed = [("n1", created[0]), ("n1", created[1]), ("n1", created[2]), ("n2", created[3]), ("n2", created[4])]
    await jobs.transition([Transition(j.job_id, 1, S.SCHEDULED, from_state=S.PENDING, node_id=n) for n, j in placed])
    await jobs.transition([Transition(created[1].job_id, 1, S.STARTING, from_state=S.SCHEDULED)])
    await jobs.transition([Transition(created[3].job_id, 1, S.FAILED, from_state=S.SCHEDULED, permanent=True)])
    # n1: jobs 0 (GPU), 1 (starting), 2 (GPU); n2: job 4 (GPU) only, job 3 ended.
    assert await jobs.node_counts() == {"n1": (3, 2), "n2": (1, 1)}


async def test_a_transition_applies_only_from_the_expected_state(store) -> None:
    jobs, _ = store
    ((job, _),) = await jobs.create([(spec(), "")])
    (wrong,) = await jobs.transition([Transition(job.job_id, 1, S.STARTING, from_state=S.SCHEDULED)])
    assert not wrong.applied and "PENDING" in wrong.reason
    (right,) = await jobs.transition(
        [Transition(job.job_id, 1, S.SCHEDULED, from_state=S.PENDING, node_id="n2")], with_jobs=True
    )
    assert right.applied and right.job is not None and right.job.state == S.SCHEDULED
    (missing,) = await jobs.transition([Transition("NO-SUCH-JOB", 1, S.RUNNING)])
    assert not missing.applied


async def test_a_retry_makes_the_next_attempt_dispatchable_once_its_backoff_has_passed(store) -> None:
    jobs, _ = store
    (a, _), (b, _) = await jobs.create([(spec(), ""), (spec(), "")])
    for job in (a, b):
        await jobs.transition([Transition(job.job_id, 1, S.SCHEDULED, from_state=S.PENDING, node_id="n1")])
    now = datetime.now(UTC)
    await jobs.transition(
        [
            Transition(a.job_id, 1, S.LOST, retry=True, not_before=now - timedelta(seconds=1)),
            Transition(b.job_id, 1, S.LOST, retry=True, not_before=now + timedelta(hours=1)),
        ]
    )
    retried = await jobs.get(a.job_id)
    assert (retried.state, retried.attempt, retried.node_id) == (S.PENDING, 2, "")
    assert [j.job_id for j in await jobs.dispatchable(10)] == [a.job_id]
    (late,) = await jobs.transition([Transition(a.job_id, 1, S.SUCCEEDED)])
    assert not late.applied and "superseded" in late.reason


async def test_a_write_below_the_registered_epoch_is_refused(store) -> None:
    jobs, advance = store
    await advance(5)
    with pytest.raises(StaleEpoch):
        await jobs.create([(spec(), "")], epoch=4)
    ((job, _),) = await jobs.create([(spec(), "")], epoch=5)
    with pytest.raises(StaleEpoch):
        await jobs.transition([Transition(job.job_id, 1, S.CANCELLED)], epoch=3)
    assert await jobs.epoch() == 5


async def test_a_write_under_an_epoch_never_issued_is_refused_and_changes_nothing(store) -> None:
    jobs, advance = store
    await advance(2)
    with pytest.raises(WrongState):
        await jobs.create([(spec(), "")], epoch=2**62)
    ((job, _),) = await jobs.create([(spec(), "")], epoch=2)
    with pytest.raises(WrongState):
        await jobs.transition([Transition(job.job_id, 1, S.CANCELLED)], epoch=2**62)
    assert await jobs.epoch() == 2 and (await jobs.get(job.job_id)).state == S.PENDING
    assert len(await jobs.dispatchable(10)) == 1


async def test_a_report_is_credited_only_from_the_node_its_attempt_was_placed_on(store) -> None:
    jobs, _ = store
    ((job, _),) = await jobs.create([(spec(), "")])
    await jobs.transition([Transition(job.job_id, 1, S.SCHEDULED, from_state=S.PENDING, node_id="n1")])
    (forged,) = await jobs.transition([Transition(job.job_id, 1, S.SUCCEEDED, reported_by="n2")])
    assert not forged.applied and "n1" in forged.reason
    assert (await jobs.get(job.job_id)).state == S.SCHEDULED
    (genuine,) = await jobs.transition([Transition(job.job_id, 1, S.RUNNING, reported_by="n1")])
    assert genuine.applied and (await jobs.get(job.job_id)).state == S.RUNNING
