"""The gateway's client of JobService (the leader's dispatch and reap calls)."""

from __future__ import annotations

from ringrift.jobs.v1 import jobs_pb2, jobs_pb2_grpc
from ringrift_runtime.grpc.calls import call

DISPATCH_BATCH = 1000


class JobsClient:
    def __init__(self, channel) -> None:
        self._stub = jobs_pb2_grpc.JobServiceStub(channel)

    async def dispatch(self, epoch: int) -> jobs_pb2.DispatchPendingJobsResponse:
        return await call(self._stub.DispatchPendingJobs(jobs_pb2.DispatchPendingJobsRequest(limit=DISPATCH_BATCH, epoch=epoch)))

    async def reap(self, epoch: int) -> jobs_pb2.ReapJobsResponse:
        return await call(self._stub.ReapJobs(jobs_pb2.ReapJobsRequest(epoch=epoch)))
