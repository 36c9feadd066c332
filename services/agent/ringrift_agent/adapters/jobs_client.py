"""Delivers the agent's job events to JobService.ReportJobEvent."""

from __future__ import annotations

from collections.abc import Callable

import grpc

from ringrift.jobs.v1 import jobs_pb2, jobs_pb2_grpc
from ringrift_agent.adapters.outbox import Rejected
from ringrift_runtime.tracing import resumed

PERMANENT = (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND)
# A report that hangs (a JobService that stopped answering) is given up and sent again
# later, rather than holding its job's later events forever.
REPORT_TIMEOUT_SECONDS = 30.0


class JobEventSender:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = jobs_pb2_grpc.JobServiceStub(channel)
        # Called with (job id, attempt) when JobService says a running attempt was superseded.
        self.on_superseded: Callable[[str, int], None] | None = None

    async def __call__(self, event: dict) -> None:
        try:
            request = jobs_pb2.ReportJobEventRequest(
                job_id=event["job_id"],
                attempt=event["attempt"],
                node_id=event["node_id"],
                state=event["state"],
                exit_code=event["exit_code"],
                error=event["error"][:4000],
                result_json=event["result_json"],
                agent_sequence=event["agent_sequence"],
                cpu_seconds=event.get("cpu_seconds", 0.0),  # absent from events queued by an older agent
            )
        except KeyError as exc:
            raise Rejected(f"not a job event: no {str(exc)[:40]}") from None
        except (TypeError, ValueError) as exc:  # a field of the wrong type or out of range
            raise Rejected(f"not a job event: {str(exc)[:80]}") from None
        try:
            # Later than the RunJob call, in the same trace (events queued by an older agent
            # have none and start their own).
            attributes = {"job.id": request.job_id, "job.attempt": str(request.attempt)}
            with resumed("report job event", event.get("traceparent", ""), attributes):
                reply = await self._stub.ReportJobEvent(request, timeout=REPORT_TIMEOUT_SECONDS)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in PERMANENT:
                raise Rejected(f"{exc.code().name}: {exc.details()}") from None
            raise
        if reply.superseded and self.on_superseded is not None:
            self.on_superseded(request.job_id, request.attempt)
