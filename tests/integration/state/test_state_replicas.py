"""Two StateService processes on one PostgreSQL database, both serving: the epoch and the
event sequence live in the database (every write takes the cluster row's lock first), so
either instance may take any write. Clients are given both (``endpoints.state`` as a
list) and use the first that answers. SIGKILL of the one they use, under writes: they go
on through the other within seconds, no acknowledged write is lost, and the event
sequence has no gap."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import asyncpg
import grpc
import pytest

from ringrift.common.v1 import common_pb2
from ringrift.state.v1 import state_pb2, state_pb2_grpc
from ringrift_contracts.paging import read_after
from ringrift_runtime.grpc.client import grpc_target
from ringrift_runtime.local.processes import ServiceProcess
from ringrift_runtime.security.identity import service
from ringrift_runtime.settings import EndpointSettings
from ringrift_runtime.testing.pki import TestPki
from tests.callers import AllowedStub

STATE = "ringrift.state.v1.StateService"
WRITERS = 4
CONTINUE_WITHIN = 3.0  # seconds from the kill to the next acknowledged write


@pytest.fixture
def poll_seconds() -> str:
    return "0.2"


@pytest.fixture
def state_url(postgres_server) -> str:
    return postgres_server.create_database()


@pytest.fixture
def replicas(tmp_path: Path, pki: TestPki, etcd, state_url: str, poll_seconds: str):
    processes = [
        ServiceProcess(
            "state",
            tmp_path / name,
            env={
                **pki.env(service("state", "test")),
                "RINGRIFT_INSTANCE_ID": name,
                "RINGRIFT_ETCD__ENDPOINTS": f'["{etcd.endpoint}"]',
                "RINGRIFT_STATE__DATABASE_URL": state_url,
                "RINGRIFT_STATE__EVENT_POLL_SECONDS": poll_seconds,
                "RINGRIFT_METRICS__ENABLED": "false",
            },
        )
        for name in ("state-a", "state-b")
    ]
    try:
        for process in processes:  # both migrate the same database: an advisory lock orders them
            process.start()
        yield processes
    finally:
        for process in processes:
            process.stop()


def test_several_instances_are_one_endpoint_setting() -> None:
    endpoints = EndpointSettings(state="10.0.0.1:50051, 10.0.0.2:50051")
    assert grpc_target(endpoints.state) == "ipv4:10.0.0.1:50051,10.0.0.2:50051"
    assert grpc_target("state:50051") == "state:50051"
    with pytest.raises(ValueError, match="IP addresses"):
        EndpointSettings(state="state-1:50051,state-2:50051")


@pytest.mark.slow  # a failure scenario, with the other kills
async def test_a_sigkilled_instance_loses_nothing_and_clients_go_on_through_the_other(
    replicas: list[ServiceProcess], pki: TestPki
) -> None:
    first, second = replicas
    both = grpc_target(f"{first.address},{second.address}")
    acknowledged: dict[str, int] = {}  # idempotency key -> sequence
    acked_at: list[float] = []
    killed_at = 0.0
    stop = asyncio.Event()

    async with AllowedStub(pki, both, "state", state_pb2_grpc.StateServiceStub, STATE) as stub:

        async def writer(index: int) -> None:
            step = 0
            while not stop.is_set():
                key = f"w{index}-{step}"
                event = common_pb2.Event(
                    type=common_pb2.EVENT_TYPE_JOB_SUBMITTED, source="test", subject=key, idempotency_key=key
                )
                try:  # the same key until acknowledged, as a client retries
                    reply = await stub.PublishEvent(state_pb2.PublishEventRequest(event=event), timeout=2)
                except grpc.aio.AioRpcError as exc:
                    assert exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED), exc
                    await asyncio.sleep(0.05)
                    continue
                acknowledged[key] = reply.event.sequence
                acked_at.append(time.monotonic())
                step += 1

        writers = [asyncio.ensure_future(writer(i)) for i in range(WRITERS)]
        try:
            while len(acknowledged) < 200:
                await asyncio.sleep(0.01)
            killed_at = time.monotonic()
            first.signal(signal.SIGKILL)  # the instance the clients use (the first that answers)
            deadline = killed_at + 20
            while len(acknowledged) < 600 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        finally:
            stop.set()
            await asyncio.gather(*writers)
        assert await asyncio.to_thread(first.wait, 10) == -signal.SIGKILL

        after_kill = [at for at in acked_at if at > killed_at]
        assert len(acknowledged) >= 600, len(acknowledged)
        assert after_kill and after_kill[0] - killed_at <= CONTINUE_WITHIN, after_kill[:1]

        async def fetch(after: int):
            return (await stub.ListEvents(state_pb2.ListEventsRequest(after_sequence=after), timeout=10)).events

        stored = await read_after(fetch, 0, lambda e: e.sequence)
    sequences = [e.sequence for e in stored]
    assert sequences == list(range(1, len(sequences) + 1))  # no gap, no duplicate
    by_key = {e.idempotency_key: e.sequence for e in stored}
    assert len(by_key) == len(stored)  # a retried write was stored once
    assert all(by_key.get(key) == sequence for key, sequence in acknowledged.items())  # nothing acknowledged lost


@pytest.mark.parametrize("poll_seconds", ["120"])
async def test_a_watch_on_one_instance_sees_the_others_events_at_their_commit_not_its_poll(
    replicas: list[ServiceProcess], pki: TestPki, state_url: str
) -> None:
    """PostgreSQL tells the other instance of every commit that appended events (NOTIFY):
    with the safety-net poll at 120 s, a watch on the second instance still receives each
    event published through the first, one after another; and again after the database
    dropped the connections that listen."""
    first, second = replicas
    async with (
        AllowedStub(pki, first.address, "state", state_pb2_grpc.StateServiceStub, STATE) as writer,
        AllowedStub(pki, second.address, "state", state_pb2_grpc.StateServiceStub, STATE) as reader,
    ):
        head = (await writer.ListEvents(state_pb2.ListEventsRequest(after_sequence=0), timeout=10)).events
        watch = reader.WatchEvents(state_pb2.WatchEventsRequest(from_sequence=head[-1].sequence if head else 0))

        async def published_and_seen(subject: str) -> None:
            event = common_pb2.Event(type=common_pb2.EVENT_TYPE_JOB_SUBMITTED, source="test", subject=subject)
            published = (await writer.PublishEvent(state_pb2.PublishEventRequest(event=event), timeout=10)).event
            seen = (await asyncio.wait_for(watch.read(), 30)).event
            assert (seen.subject, seen.sequence) == (subject, published.sequence)

        try:
            for n in range(3):
                await published_and_seen(f"s{n}")
            admin = await asyncpg.connect(state_url.replace("postgresql+asyncpg://", "postgresql://"))
            try:
                dropped = await admin.fetchval(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND query LIKE 'LISTEN%'"
                )
            finally:
                await admin.close()
            assert dropped == 2  # each instance's
            for n in range(3, 6):
                await published_and_seen(f"s{n}")
        finally:
            watch.cancel()
