"""StateService as its own process over real gRPC: bad input is refused naming the
field and changes nothing, fencing, watch resume without gaps or duplicates, and no
acknowledged write lost to a SIGKILL."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import grpc
import pytest

from ringrift.common.v1 import common_pb2
from ringrift.state.v1 import state_pb2, state_pb2_grpc
from ringrift_contracts.paging import read_after, read_all
from ringrift_runtime.grpc.status import error_reason, field_violations
from ringrift_runtime.local.processes import ServiceProcess
from ringrift_runtime.security.identity import agent, gateway, service
from ringrift_runtime.testing.pki import TestPki
from tests.callers import AllowedStub, drop_leader_key, hold_leader_key

JOB_SUBMITTED = common_pb2.EVENT_TYPE_JOB_SUBMITTED
STATE = "ringrift.state.v1.StateService"


@pytest.fixture
def state_process(tmp_path: Path, pki: TestPki, etcd):
    process = ServiceProcess(
        "state",
        tmp_path,
        env={
            **pki.env(service("state", "test")),
            "RINGRIFT_ETCD__ENDPOINTS": f'["{etcd.endpoint}"]',
            "RINGRIFT_STATE__DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'state.db'}",
            "RINGRIFT_STATE__EVENT_POLL_SECONDS": "0.2",
            "RINGRIFT_METRICS__ENABLED": "false",
            "RINGRIFT_ETCD__REGISTER_SERVICE": "false",
        },
    )
    process.start()
    try:
        yield process
    finally:
        process.stop()


def _stub(state_process: ServiceProcess, pki: TestPki) -> AllowedStub:
    """Each method called as an identity the authorization table allows for it."""
    return AllowedStub(pki, state_process.address, "state", state_pb2_grpc.StateServiceStub, STATE)


@pytest.fixture
async def stub(state_process: ServiceProcess, pki: TestPki):
    async with _stub(state_process, pki) as allowed:
        yield allowed


async def _claim(stub: AllowedStub, etcd_settings, name: str) -> tuple[int, int]:
    """Campaign as gateway ``name`` (its key in etcd) and claim the term's epoch;
    (epoch, lease id)."""
    key, lease = await hold_leader_key(etcd_settings, name)
    reply = await stub.as_(gateway(name, "test")).ClaimEpoch(state_pb2.ClaimEpochRequest(leader_key=key), timeout=10)
    return reply.epoch, lease


def _event(**fields) -> common_pb2.Event:
    return common_pb2.Event(type=JOB_SUBMITTED, source="test", **fields)


async def _sigkill_mid_writes(state_process: ServiceProcess, write, acknowledged, enough: int) -> None:
    """Four writers call ``write(writer, step)`` until it fails; once ``acknowledged``
    holds ``enough``, SIGKILL StateService; then start it again."""

    async def writer(index: int) -> None:
        for step in range(1000):
            try:
                await write(index, step)
            except grpc.aio.AioRpcError:
                return

    writers = [asyncio.ensure_future(writer(i)) for i in range(4)]
    while len(acknowledged) < enough:
        await asyncio.sleep(0.01)
    state_process.signal(signal.SIGKILL)
    await asyncio.gather(*writers)
    assert await asyncio.to_thread(state_process.wait, 10) == -signal.SIGKILL
    await asyncio.to_thread(state_process.start)


BAD_REQUESTS = [
    ("ClaimEpoch", state_pb2.ClaimEpochRequest(), "leader_key"),
    ("ClaimEpoch", state_pb2.ClaimEpochRequest(leader_key="k" * 300), "leader_key"),
    ("PublishEvent", state_pb2.PublishEventRequest(), "event"),
    ("PublishEvent", state_pb2.PublishEventRequest(event=common_pb2.Event(source="x")), "event.type"),
    ("PublishEvent", state_pb2.PublishEventRequest(event=_event(config_key="square8")), "event.config_key"),
    ("PublishEvent", state_pb2.PublishEventRequest(event=_event(sequence=3)), "event.sequence"),
    ("PersistState", state_pb2.PersistStateRequest(namespace="../x", key="k"), "namespace"),
    ("PersistState", state_pb2.PersistStateRequest(namespace="ns", key="k", value=b"x" * (1024 * 1024 + 1)), "value"),
    ("LoadState", state_pb2.LoadStateRequest(namespace="ns"), "key"),
    ("ListEvents", state_pb2.ListEventsRequest(limit=1_000_000), "limit"),
    (
        "RegisterModel",
        state_pb2.RegisterModelRequest(model=common_pb2.Model(config_key="sq", path="m", sha256="ab" * 32)),
        "model.config_key",
    ),
    (
        "RegisterModel",
        state_pb2.RegisterModelRequest(model=common_pb2.Model(config_key="square8_2p", path="m", sha256="xyz")),
        "model.sha256",
    ),
    (
        "SetModelStatus",
        state_pb2.SetModelStatusRequest(model_id="m1", status=common_pb2.MODEL_STATUS_REJECTED),
        "reason",
    ),
    ("GetBestModels", state_pb2.GetBestModelsRequest(config_keys=["square8_2p", "square8"]), "config_keys[1]"),
    (
        "RecordNodes",
        state_pb2.RecordNodesRequest(alive=[common_pb2.NodeInfo(node_id="10.0.0.1:1")]),
        "alive[0].node_id",
    ),
    ("UpdateConfigStats", state_pb2.UpdateConfigStatsRequest(config_key="square8_9p"), "config_key"),
    (
        "UpdateConfigStats",
        state_pb2.UpdateConfigStatsRequest(config_key="square8_2p", add_games=5, add_cpu_seconds=-1.0),
        "add_cpu_seconds",
    ),
    (
        "UpdateConfigStats",
        state_pb2.UpdateConfigStatsRequest(config_key="square8_2p", add_games=5, add_cpu_seconds=float("nan")),
        "add_cpu_seconds",
    ),
    (
        "CreateJobs",
        state_pb2.CreateJobsRequest(jobs=[state_pb2.NewJob(spec=common_pb2.JobSpec())]),
        "jobs[0].spec.kind",
    ),
    (
        "TransitionJobs",
        state_pb2.TransitionJobsRequest(transitions=[state_pb2.JobTransition(job_id="j", attempt=1)]),
        "transitions[0].to_state",
    ),
    (
        "TransitionJobs",
        state_pb2.TransitionJobsRequest(
            transitions=[
                state_pb2.JobTransition(
                    job_id="j", attempt=1, to_state=common_pb2.JOB_STATE_SUCCEEDED, cpu_seconds=float("inf")
                )
            ]
        ),
        "transitions[0].cpu_seconds",
    ),
]


@pytest.mark.parametrize(("method", "request_message", "field"), BAD_REQUESTS, ids=lambda v: str(v)[:30])
async def test_bad_requests_name_the_field_and_change_nothing(stub, method, request_message, field) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await getattr(stub, method)(request_message, timeout=5)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in field_violations(caught.value), caught.value.details()
    assert field in caught.value.details()
    stats = await stub.GetClusterStats(state_pb2.GetClusterStatsRequest(), timeout=5)
    assert stats.epoch == 0 and stats.last_event_sequence == 0


async def test_oversized_request_is_refused(stub) -> None:
    huge = state_pb2.PersistStateRequest(namespace="ns", key="k", value=b"x" * (17 * 1024 * 1024))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.PersistState(huge, timeout=10)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_fencing_rejects_stale_leaders(stub, etcd, pki: TestPki) -> None:
    settings = pki.etcd_settings(etcd.endpoint)
    first, first_lease = await _claim(stub, settings, "gw-1")
    assert first == 1
    await drop_leader_key(settings, first_lease)  # gw-1's lease ends; gw-2 leads next
    second, _ = await _claim(stub, settings, "gw-2")
    assert second == 2
    for call in (
        stub.PublishEvent(state_pb2.PublishEventRequest(event=_event(epoch=first)), timeout=5),
        stub.PersistState(state_pb2.PersistStateRequest(namespace="loops", key="k", epoch=first), timeout=5),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert error_reason(caught.value) == "STALE_EPOCH"
    epoch = await stub.GetClusterEpoch(state_pb2.GetClusterEpochRequest(), timeout=5)
    assert (epoch.epoch, epoch.leader_id) == (2, "gw-2")
    stored = await stub.PublishEvent(state_pb2.PublishEventRequest(event=_event(epoch=second)), timeout=5)
    assert stored.event.sequence == 1


async def test_an_epoch_is_issued_only_to_the_gateway_whose_key_leads(stub, etcd, pki: TestPki) -> None:
    """The first build took any epoch from anyone: one AdvanceEpoch(2**62) made every later
    leader stale. Now an epoch is issued by StateService, to the gateway etcd shows leading."""
    settings = pki.etcd_settings(etcd.endpoint)
    leader_key, _ = await hold_leader_key(settings, "gw-1")
    follower_key, _ = await hold_leader_key(settings, "gw-2")
    as_gw1, as_gw2 = stub.as_(gateway("gw-1", "test")), stub.as_(gateway("gw-2", "test"))
    refusals = [
        # the leader's key, claimed by another gateway
        (as_gw2.ClaimEpoch(state_pb2.ClaimEpochRequest(leader_key=leader_key), timeout=5), "PERMISSION_DENIED"),
        # a key that does not lead
        (as_gw2.ClaimEpoch(state_pb2.ClaimEpochRequest(leader_key=follower_key), timeout=5), "FAILED_PRECONDITION"),
        # AdvanceEpoch: nobody may choose an epoch any more
        (
            as_gw1.AdvanceEpoch(state_pb2.AdvanceEpochRequest(epoch=2**62, leader_id="gw-1"), timeout=5),
            "PERMISSION_DENIED",
        ),
        # a write under an epoch never issued
        (stub.PublishEvent(state_pb2.PublishEventRequest(event=_event(epoch=2**62)), timeout=5), "FAILED_PRECONDITION"),
    ]
    for call, code in refusals:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code().name == code, caught.value.details()
    stats = await stub.GetClusterStats(state_pb2.GetClusterStatsRequest(), timeout=5)
    assert (stats.epoch, stats.last_event_sequence) == (0, 0)  # nothing changed
    claimed = await as_gw1.ClaimEpoch(state_pb2.ClaimEpochRequest(leader_key=leader_key), timeout=5)
    assert (claimed.epoch, claimed.previous_epoch) == (1, 0)
    again = await as_gw1.ClaimEpoch(state_pb2.ClaimEpochRequest(leader_key=leader_key), timeout=5)
    assert again.epoch == 1  # a retried claim is the same term


async def test_state_values_round_trip(stub) -> None:
    persisted = await stub.PersistState(
        state_pb2.PersistStateRequest(namespace="scheduler", key="boosts", value=b'{"a":1}'), timeout=5
    )
    assert persisted.version == 1
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.PersistState(state_pb2.PersistStateRequest(namespace="scheduler", key="boosts"), timeout=5)
    assert caught.value.code() == grpc.StatusCode.ABORTED
    loaded = await stub.LoadState(state_pb2.LoadStateRequest(namespace="scheduler", key="boosts"), timeout=5)
    assert (loaded.found, loaded.value, loaded.version) == (True, b'{"a":1}', 1)


async def test_watch_resumes_without_gaps_or_duplicates(stub) -> None:
    async def publish(count: int, start: int) -> None:
        for index in range(start, start + count):
            await stub.PublishEvent(state_pb2.PublishEventRequest(event=_event(subject=f"job-{index}")), timeout=5)

    await publish(5, 0)
    call = stub.WatchEvents(state_pb2.WatchEventsRequest(from_sequence=0), timeout=30)
    first = [(await call.read()).event.sequence for _ in range(3)]
    call.cancel()
    assert first == [1, 2, 3]

    await publish(5, 5)  # published while the watcher is away
    resumed = stub.WatchEvents(state_pb2.WatchEventsRequest(from_sequence=first[-1]), timeout=30)
    caught_up = [(await resumed.read()).event for _ in range(7)]
    assert [e.sequence for e in caught_up] == list(range(4, 11))
    assert [e.subject for e in caught_up] == [f"job-{i}" for i in range(3, 10)]

    await publish(1, 10)  # live
    live = await asyncio.wait_for(resumed.read(), 5)
    assert (live.event.sequence, live.event.subject) == (11, "job-10")
    resumed.cancel()


async def test_watch_filters_by_type(stub) -> None:
    await stub.PublishEvent(state_pb2.PublishEventRequest(event=_event(subject="j")), timeout=5)
    node = common_pb2.Event(type=common_pb2.EVENT_TYPE_NODE_JOINED, source="agent", subject="n1")
    await stub.PublishEvent(state_pb2.PublishEventRequest(event=node), timeout=5)
    call = stub.WatchEvents(
        state_pb2.WatchEventsRequest(filter=common_pb2.EventFilter(types=[common_pb2.EVENT_TYPE_NODE_JOINED])),
        timeout=30,
    )
    assert (await call.read()).event.subject == "n1"
    call.cancel()


async def test_acknowledged_writes_survive_sigkill(state_process: ServiceProcess, pki: TestPki, etcd) -> None:
    acknowledged: list[int] = []
    settings = pki.etcd_settings(etcd.endpoint)
    async with _stub(state_process, pki) as stub:
        first, lease = await _claim(stub, settings, "gw")

        async def write(index: int, step: int) -> None:
            event = _event(subject=f"{index}-{step}")
            reply = await stub.PublishEvent(state_pb2.PublishEventRequest(event=event), timeout=5)
            acknowledged.append(reply.event.sequence)

        await _sigkill_mid_writes(state_process, write, acknowledged, 50)
    async with _stub(state_process, pki) as stub:

        async def fetch(after: int):
            return (await stub.ListEvents(state_pb2.ListEventsRequest(after_sequence=after), timeout=10)).events

        sequences = {e.sequence for e in await read_after(fetch, 0, lambda e: e.sequence)}
        assert set(acknowledged) <= sequences
        assert sorted(sequences) == list(range(1, len(sequences) + 1))
        epoch = await stub.GetClusterEpoch(state_pb2.GetClusterEpochRequest(), timeout=5)
        assert (epoch.epoch, epoch.leader_id) == (first, "gw")  # the issued epoch survives the restart
        await drop_leader_key(settings, lease)
        assert (await _claim(stub, settings, "gw-next"))[0] == first + 1  # and the next term follows it
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.PublishEvent(state_pb2.PublishEventRequest(event=_event(epoch=first)), timeout=5)
        assert error_reason(caught.value) == "STALE_EPOCH"


async def test_acknowledged_job_writes_survive_sigkill(state_process: ServiceProcess, pki: TestPki) -> None:
    """Jobs created and moved concurrently; SIGKILL mid-stream; every acknowledged
    creation and transition is there after the restart."""
    created: list[str] = []
    scheduled: set[str] = set()
    async with _stub(state_process, pki) as stub:

        async def write(index: int, step: int) -> None:
            new = state_pb2.NewJob(spec=common_pb2.JobSpec(kind="sleep"), idempotency_key=f"{index}-{step}")
            reply = await stub.CreateJobs(state_pb2.CreateJobsRequest(jobs=[new]), timeout=5)
            job_id = reply.jobs[0].job_id
            created.append(job_id)
            move = state_pb2.JobTransition(
                job_id=job_id, attempt=1, to_state=common_pb2.JOB_STATE_SCHEDULED, node_id="n1"
            )
            moved = await stub.TransitionJobs(state_pb2.TransitionJobsRequest(transitions=[move]), timeout=5)
            if moved.outcomes[0].applied:
                scheduled.add(job_id)

        await _sigkill_mid_writes(state_process, write, scheduled, 40)
    async with _stub(state_process, pki) as stub:
        for job_id in created:
            job = (await stub.GetJob(state_pb2.GetJobRequest(job_id=job_id), timeout=5)).job
            if job_id in scheduled:
                assert job.state == common_pb2.JOB_STATE_SCHEDULED and job.node_id == "n1"


async def test_acknowledged_promotions_survive_sigkill(state_process: ServiceProcess, pki: TestPki, etcd) -> None:
    """Models registered and promoted concurrently; SIGKILL mid-stream; every acknowledged
    registration and promotion is there after the restart."""
    registered: list[str] = []
    promoted: set[str] = set()
    async with _stub(state_process, pki) as stub:
        epoch, _ = await _claim(stub, pki.etcd_settings(etcd.endpoint), "gw-models")

        async def write(index: int, step: int) -> None:
            model_id = f"square8_2p.w{index}-{step}"
            model = common_pb2.Model(
                model_id=model_id, config_key="square8_2p", generation=index * 1000 + step + 1,
                path=f"models/{model_id}.npz", sha256="b" * 64,
            )  # fmt: skip
            await stub.RegisterModel(state_pb2.RegisterModelRequest(model=model, epoch=epoch), timeout=5)
            registered.append(model_id)
            promote = state_pb2.SetModelStatusRequest(
                model_id=model_id, status=common_pb2.MODEL_STATUS_PROMOTED, epoch=epoch
            )
            await stub.SetModelStatus(promote, timeout=5)
            promoted.add(model_id)

        await _sigkill_mid_writes(state_process, write, promoted, 40)
    async with _stub(state_process, pki) as stub:

        async def fetch(token: str):
            reply = await stub.ListModels(
                state_pb2.ListModelsRequest(config_key="square8_2p", page=common_pb2.PageRequest(page_token=token)),
                timeout=10,
            )
            return reply.models, reply.next_page_token

        stored = {m.model_id: m.status for m in await read_all(fetch)}
    assert set(registered) <= set(stored)
    assert all(stored[m] == common_pb2.MODEL_STATUS_PROMOTED for m in promoted), "an acknowledged promotion was lost"


async def test_an_event_names_its_publisher_from_the_certificate_not_the_request(stub) -> None:
    forged = _event(subject="x", attributes={"published_by": "gateway:gw-1", "note": "kept"})
    as_training = stub.as_(service("training", "test"))
    stored = await as_training.PublishEvent(state_pb2.PublishEventRequest(event=forged), timeout=5)
    assert stored.event.attributes["published_by"] == "service:training"
    assert stored.event.attributes["note"] == "kept"


async def test_an_agent_publishes_only_skipped_records(stub) -> None:
    as_agent = stub.as_(agent("node-1", "test"))
    skipped = common_pb2.Event(
        type=common_pb2.EVENT_TYPE_RECORD_SKIPPED, source="agent/node-1", subject="000000000002.json",
        attributes={"kind": "outbox_event", "reason": "not JSON"},
    )  # fmt: skip
    stored = await as_agent.PublishEvent(state_pb2.PublishEventRequest(event=skipped), timeout=5)
    assert stored.event.attributes["published_by"] == "agent:node-1"
    for forged in (common_pb2.EVENT_TYPE_JOB_SUCCEEDED, common_pb2.EVENT_TYPE_MODEL_PROMOTED):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            event = common_pb2.Event(type=forged, source="agent/node-1", subject="j1")
            await as_agent.PublishEvent(state_pb2.PublishEventRequest(event=event), timeout=5)
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED and "RECORD_SKIPPED" in caught.value.details()
    listed = await stub.ListEvents(state_pb2.ListEventsRequest(), timeout=5)
    assert [e.type for e in listed.events] == [common_pb2.EVENT_TYPE_RECORD_SKIPPED]  # nothing forged was stored


async def test_every_reader_reads_past_the_first_page(stub, state_process: ServiceProcess, etcd, pki: TestPki) -> None:
    """StateService answers at most 500 events and 1,000 models a page, whatever was asked:
    the training coordinator's, the scheduler's and the gateway's readers still see them all
    (they read until an empty page or the last token, never to the first short page)."""
    from ringrift_gateway.adapters.clients.state import StateClient
    from ringrift_selfplay.adapters.state import OUTCOME_SOURCE
    from ringrift_selfplay.adapters.state import SchedulerState as SelfplayState
    from ringrift_training.adapters.clients import State as TrainingState

    epoch, _ = await _claim(stub, pki.etcd_settings(etcd.endpoint), "gw-pages")
    events, models = 520, 1010

    async def publish(event: common_pb2.Event) -> None:
        await stub.PublishEvent(state_pb2.PublishEventRequest(event=event), timeout=10)

    async def register(number: int) -> None:
        model = common_pb2.Model(
            model_id=f"square8_2p.g{number}", config_key="square8_2p", generation=number,
            path=f"models/{number}.npz", sha256="a" * 64,
        )  # fmt: skip
        await stub.RegisterModel(state_pb2.RegisterModelRequest(model=model, epoch=epoch), timeout=10)

    stage = common_pb2.EVENT_TYPE_TRAINING_STAGE_CHANGED
    evaluated = common_pb2.EVENT_TYPE_EVALUATION_COMPLETED
    outcome = {"win_rate": "0.5", "promoted": "false"}
    writes = [
        *(lambda n=n: publish(common_pb2.Event(type=stage, source="training", subject=f"run-{n}", epoch=epoch))
          for n in range(events)),
        *(lambda: publish(common_pb2.Event(type=evaluated, source=OUTCOME_SOURCE, config_key="square8_2p",
                                           epoch=epoch, attributes=outcome))
          for _ in range(events)),
        *(lambda n=n: register(n) for n in range(1, models + 1)),
    ]  # fmt: skip
    for start in range(0, len(writes), 32):  # a few dozen calls in flight; no long step on the loop
        await asyncio.gather(*(write() for write in writes[start : start + 32]))
    async with (
        pki.channel(state_process.address, "state", service("training", "test")) as training,
        pki.channel(state_process.address, "state", service("selfplay", "test")) as selfplay,
        pki.channel(state_process.address, "state", gateway("gw-pages", "test")) as gateway_channel,
    ):
        runs, last = await TrainingState(training).run_events(0)
        assert len(runs) == events and last == max(sequence for sequence, _ in runs)
        outcomes = await SelfplayState(selfplay).evaluations()
        assert len(outcomes["square8_2p"]) == events
        generations = await SelfplayState(selfplay).generations()
        assert len(generations["square8_2p"]) == models
        seen = await StateClient(gateway_channel, source="gateway/gw-pages").events_after(0, ["TRAINING_STAGE_CHANGED"])
        assert len(seen) == events
