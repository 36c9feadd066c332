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
def replicas(tmp_path: Path, pki: TestPki, etcd, postgres_server):
    url = postgres_server.create_database()
    processes = [
        ServiceProcess(
            "state",
            tmp_path / name,
            env={
                **pki.env(service("state", "test")),
                "RINGRIFT_INSTANCE_ID": name,
                "RINGRIFT_ETCD__ENDPOINTS": f'["{etcd.endpoint}"]',
                "RINGRIFT_STATE__DATABASE_URL": url,
                "RINGRIFT_STATE__EVENT_POLL_SECONDS": "0.2",
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
