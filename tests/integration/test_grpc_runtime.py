"""The gRPC runtime over real sockets: error translation, request ids, deadlines,
retries of UNAVAILABLE on idempotent methods only, metrics, health and graceful drain."""

from __future__ import annotations

import asyncio
import re
import time
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ringrift.common.v1 import common_pb2
from ringrift.state.v1 import state_pb2, state_pb2_grpc
from ringrift_runtime import errors
from ringrift_runtime.grpc.client import ChannelFactory
from ringrift_runtime.grpc.contracts import is_idempotent
from ringrift_runtime.grpc.interceptors import inbound_deadline
from ringrift_runtime.grpc.server import registration
from ringrift_runtime.grpc.status import error_reason, field_violations
from ringrift_runtime.logs import current_request_id
from ringrift_runtime.security.context import Security
from ringrift_runtime.security.identity import service
from ringrift_runtime.settings import ClientSettings
from ringrift_runtime.testing.inprocess import AnyIdentity, serve_in_process
from ringrift_runtime.testing.pki import TestPki
from ringrift_settings import RingriftSettings

STATE = "ringrift.state.v1.StateService"


class ScriptedState(state_pb2_grpc.StateServiceServicer):
    """A StateService whose methods exercise the runtime's paths."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self.seen: list[tuple[str, float | None]] = []
        self.unavailable_times = 2

    def _count(self, name: str) -> int:
        self.calls[name] = self.calls.get(name, 0) + 1
        return self.calls[name]

    async def AdvanceEpoch(self, request, context):
        if not request.leader_id:
            raise errors.InvalidArgument.field("leader_id", "is required")
        if request.epoch < 5:
            raise errors.StaleEpoch(received=request.epoch, highest=5)
        return state_pb2.AdvanceEpochResponse(epoch=request.epoch, previous_epoch=5)

    async def GetJob(self, request, context):
        raise errors.NotFound(f"job {request.job_id} does not exist")

    async def LoadState(self, request, context):
        raise RuntimeError("password=hunter2 leaked in an exception")

    async def GetClusterStats(self, request, context):
        remaining = inbound_deadline()
        self.seen.append((current_request_id(), None if remaining is None else remaining - time.monotonic()))
        await asyncio.sleep(float(dict(context.invocation_metadata()).get("x-sleep", "0")))
        return state_pb2.GetClusterStatsResponse(epoch=7)

    async def ListEvents(self, request, context):
        if self._count("ListEvents") <= self.unavailable_times:
            raise errors.DependencyUnavailable("database restarting")
        return state_pb2.ListEventsResponse()

    async def PublishEvent(self, request, context):
        self._count("PublishEvent")
        raise errors.DependencyUnavailable("database restarting")

    async def WatchEvents(self, request, context):
        for sequence in (1, 2):
            yield state_pb2.WatchEventsResponse(event=common_pb2.Event(sequence=sequence))
        if "x-hold" in dict(context.invocation_metadata()):
            await asyncio.sleep(60)  # a watcher that stays
        raise errors.WrongState("the event log was truncated")


@pytest.fixture
async def served(test_settings: RingriftSettings):
    servicer = ScriptedState()
    async with serve_in_process([registration(STATE, servicer)], test_settings, access=AnyIdentity()) as host:
        security = Security.of(test_settings)
        factory = ChannelFactory(ClientSettings(deadline_seconds=5, retry_initial_backoff_seconds=0.01), security)
        async with factory.channel(host.address, security.service_name("state")) as channel:
            yield servicer, state_pb2_grpc.StateServiceStub(channel), host


async def test_invalid_argument_names_the_field(served) -> None:
    _, stub, _ = served
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.AdvanceEpoch(state_pb2.AdvanceEpochRequest(epoch=9))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "leader_id" in caught.value.details()
    assert field_violations(caught.value) == {"leader_id": "is required"}
    assert error_reason(caught.value) == "INVALID_FIELD"


async def test_stale_epoch_is_failed_precondition_with_reason(served) -> None:
    _, stub, _ = served
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.AdvanceEpoch(state_pb2.AdvanceEpochRequest(epoch=3, leader_id="a"))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_reason(caught.value) == "STALE_EPOCH"


async def test_not_found_and_unimplemented(served) -> None:
    _, stub, _ = served
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetJob(state_pb2.GetJobRequest(job_id="j1"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ListModels(state_pb2.ListModelsRequest())
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "ListModels" in caught.value.details()


async def test_unexpected_errors_are_internal_and_generic(served) -> None:
    _, stub, _ = served
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.LoadState(state_pb2.LoadStateRequest(namespace="n", key="k"))
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    assert "hunter2" not in caught.value.details()
    assert "request id" in caught.value.details()


async def test_stream_errors_are_translated_after_items(served) -> None:
    _, stub, _ = served
    received = []
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for item in stub.WatchEvents(state_pb2.WatchEventsRequest()):
            received.append(item.event.sequence)
    assert received == [1, 2]
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_every_call_gets_a_deadline_and_a_request_id(served) -> None:
    servicer, stub, _ = served
    await stub.GetClusterStats(state_pb2.GetClusterStatsRequest())
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    traceparent = f"00-{trace_id}-00f067aa0ba902b7-01"  # W3C trace context of a caller
    await stub.GetClusterStats(state_pb2.GetClusterStatsRequest(), metadata=(("traceparent", traceparent),), timeout=2)
    (first_id, first_remaining), (second_id, second_remaining) = servicer.seen
    # The request id is the trace id: a new trace's, or the caller's.
    assert re.fullmatch("[0-9a-f]{32}", first_id) and first_id != trace_id
    assert first_remaining is not None and 3 < first_remaining <= 5.1
    assert second_id == trace_id and second_remaining is not None and second_remaining <= 2.1


async def test_deadline_exceeded_is_reported(served) -> None:
    _, stub, _ = served
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetClusterStats(state_pb2.GetClusterStatsRequest(), metadata=(("x-sleep", "2"),), timeout=0.2)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


async def test_unavailable_is_retried_for_idempotent_methods_only(served) -> None:
    servicer, stub, _ = served
    assert is_idempotent(f"{STATE}/ListEvents") and not is_idempotent(f"{STATE}/PublishEvent")
    await stub.ListEvents(state_pb2.ListEventsRequest())
    assert servicer.calls["ListEvents"] == 3  # two UNAVAILABLE answers, then success
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.PublishEvent(state_pb2.PublishEventRequest())
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert servicer.calls["PublishEvent"] == 1


async def test_health_reports_each_service(served, pki: TestPki) -> None:
    _, _, host = served
    async with pki.channel(host.address, "state") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for name in ("", STATE):
            reply = await health.Check(health_pb2.HealthCheckRequest(service=name), timeout=2)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await health.Check(health_pb2.HealthCheckRequest(service="no.Such"), timeout=2)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_shutdown_drains_in_flight_calls_and_refuses_new_ones(
    test_settings: RingriftSettings, pki: TestPki
) -> None:
    servicer = ScriptedState()
    async with serve_in_process([registration(STATE, servicer)], test_settings, access=AnyIdentity()) as host:
        async with pki.channel(host.address, "state") as channel:
            stub = state_pb2_grpc.StateServiceStub(channel)
            slow = asyncio.ensure_future(
                stub.GetClusterStats(state_pb2.GetClusterStatsRequest(), metadata=(("x-sleep", "0.5"),), timeout=5)
            )
            await asyncio.sleep(0.2)
            await host.stop(grace=5)
            assert (await slow).epoch == 7
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.GetClusterStats(state_pb2.GetClusterStatsRequest(), timeout=1)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        return reply.read().decode()


async def test_metrics_count_calls_by_method_and_code() -> None:
    settings = RingriftSettings(server={"port": 0}, metrics={"enabled": True, "port": 0}, security={"insecure": True})
    async with serve_in_process([registration(STATE, ScriptedState())], settings) as host:
        async with grpc.aio.insecure_channel(host.address) as channel:
            stub = state_pb2_grpc.StateServiceStub(channel)
            for _ in range(3):
                with pytest.raises(grpc.aio.AioRpcError):
                    await stub.GetJob(state_pb2.GetJobRequest(job_id="x"), timeout=2)
            await stub.GetClusterStats(state_pb2.GetClusterStatsRequest(), timeout=2)
        text = await asyncio.to_thread(_scrape, host.metrics_port)
    assert (
        'grpc_server_handled_total{grpc_code="NOT_FOUND",grpc_method="GetJob",'
        'grpc_service="ringrift.state.v1.StateService"} 3.0' in text
    )
    assert 'grpc_server_handling_seconds_count{grpc_code="OK",grpc_method="GetClusterStats"' in text


async def test_each_caller_has_its_own_caps_on_calls_in_flight_and_streams_open(pki: TestPki) -> None:
    """Past its cap a caller's call is RESOURCE_EXHAUSTED at once; another identity, and
    health checks, are not counted against it; a freed place can be taken again."""
    from ringrift_runtime.security.identity import gateway

    settings = RingriftSettings(
        server={"port": 0, "grace_seconds": 1.0, "max_calls_per_caller": 2, "max_streams_per_caller": 1},
        metrics={"enabled": False},
        etcd={"cluster_name": "test"},
        security=pki.security(service("state", "test")),
    )
    async with (
        serve_in_process([registration(STATE, ScriptedState())], settings, access=AnyIdentity()) as host,
        pki.channel(host.address, "state", gateway("gw-1", "test")) as first,
        pki.channel(host.address, "state", gateway("gw-2", "test")) as second,
    ):
        one, other = state_pb2_grpc.StateServiceStub(first), state_pb2_grpc.StateServiceStub(second)
        slow = (("x-sleep", "1"),)
        calls = [one.GetClusterStats(state_pb2.GetClusterStatsRequest(), metadata=slow, timeout=10) for _ in range(3)]
        answers = await asyncio.gather(*calls, return_exceptions=True)
        refused = [a for a in answers if isinstance(a, grpc.aio.AioRpcError)]
        assert len(refused) == 1 and refused[0].code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "gateway:gw-1" in refused[0].details() and "calls in flight" in refused[0].details()
        assert (await one.GetClusterStats(state_pb2.GetClusterStatsRequest(), timeout=5)).epoch == 7  # freed

        held = one.WatchEvents(state_pb2.WatchEventsRequest(), metadata=(("x-hold", "1"),), timeout=30)
        assert (await held.read()).event.sequence == 1
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await one.WatchEvents(state_pb2.WatchEventsRequest(), timeout=10).read()
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "streams open" in caught.value.details()
        also = other.WatchEvents(state_pb2.WatchEventsRequest(), metadata=(("x-hold", "1"),), timeout=30)
        assert (await also.read()).event.sequence == 1  # another caller has its own places
        health = health_pb2_grpc.HealthStub(first)
        assert (await health.Check(health_pb2.HealthCheckRequest(), timeout=5)).status  # never counted
        held.cancel()
        also.cancel()
        for _ in range(50):  # the server sees the cancellation shortly after
            reopened = one.WatchEvents(state_pb2.WatchEventsRequest(), metadata=(("x-hold", "1"),), timeout=30)
            try:
                assert (await reopened.read()).event.sequence == 1
                break
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                await asyncio.sleep(0.1)
        else:
            pytest.fail("the cancelled stream's place was never freed")
        reopened.cancel()
