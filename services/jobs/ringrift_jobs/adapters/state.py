"""The job store: StateService's jobs, epoch and event stream."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import grpc

from ringrift.common.v1 import common_pb2
from ringrift.state.v1 import state_pb2, state_pb2_grpc
from ringrift_contracts.jobs import ON_NODE
from ringrift_contracts.limits import MAX_PAGE_SIZE
from ringrift_contracts.paging import read_all
from ringrift_jobs.adapters import wire
from ringrift_jobs.domain.model import Job, Outcome, Spec, Transition
from ringrift_runtime.grpc.calls import call, stream

ON_NODE_STATES = sorted(int(s) for s in ON_NODE)


class StateJobStore:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = state_pb2_grpc.StateServiceStub(channel)

    async def create(self, jobs: list[tuple[Spec, str]], epoch: int = 0) -> list[tuple[Job, bool]]:
        new = [state_pb2.NewJob(spec=wire.spec_message(s), idempotency_key=key) for s, key in jobs]
        reply = await call(self._stub.CreateJobs(state_pb2.CreateJobsRequest(jobs=new, epoch=epoch)))
        return [(wire.job(j), created) for j, created in zip(reply.jobs, reply.created, strict=True)]

    async def get(self, job_id: str) -> Job:
        return wire.job(await self.get_message(job_id))

    async def get_message(self, job_id: str) -> common_pb2.Job:
        return (await call(self._stub.GetJob(state_pb2.GetJobRequest(job_id=job_id)))).job

    async def list_page(
        self, job_filter: state_pb2.JobFilter, page_size: int, token: str
    ) -> state_pb2.ListJobsResponse:
        page = common_pb2.PageRequest(page_size=page_size, page_token=token)
        return await call(self._stub.ListJobs(state_pb2.ListJobsRequest(filter=job_filter, page=page)))

    async def dispatchable(self, limit: int) -> list[Job]:
        page = await self.list_page(state_pb2.JobFilter(dispatchable=True), limit, "")
        return [wire.job(j) for j in page.jobs]

    async def on_nodes(self) -> list[Job]:
        job_filter = state_pb2.JobFilter(states=ON_NODE_STATES)

        async def fetch(token: str) -> tuple[list[common_pb2.Job], str]:
            page = await self.list_page(job_filter, MAX_PAGE_SIZE, token)
            return list(page.jobs), page.next_page_token

        return [wire.job(j) for j in await read_all(fetch)]

    async def node_counts(self) -> dict[str, tuple[int, int]]:
        reply = await call(self._stub.CountJobsOnNodes(state_pb2.CountJobsOnNodesRequest()))
        return {n.node_id: (n.jobs, n.gpu_jobs) for n in reply.nodes}

    async def transition(self, transitions: list[Transition], epoch: int = 0, with_jobs: bool = False) -> list[Outcome]:
        if not transitions:
            return []
        request = state_pb2.TransitionJobsRequest(
            transitions=[wire.transition_message(t) for t in transitions], epoch=epoch, omit_jobs=not with_jobs
        )
        return [wire.outcome(o) for o in (await call(self._stub.TransitionJobs(request))).outcomes]

    async def archive(self, older_than_seconds: int, epoch: int, history_seconds: int = 0) -> tuple[int, int]:
        """(jobs moved to history, jobs deleted from history)."""
        request = state_pb2.ArchiveJobsRequest(
            older_than_seconds=older_than_seconds, epoch=epoch, delete_history_older_than_seconds=history_seconds
        )
        reply = await call(self._stub.ArchiveJobs(request))
        return reply.moved, reply.deleted

    async def epoch(self) -> int:
        return (await call(self._stub.GetClusterEpoch(state_pb2.GetClusterEpochRequest()))).epoch

    async def event_head(self) -> int:
        return (await call(self._stub.GetEventHead(state_pb2.GetEventHeadRequest()))).sequence

    async def job_events(self, job_id: str, after: int) -> AsyncGenerator[int, None]:
        request = state_pb2.WatchEventsRequest(from_sequence=after, filter=common_pb2.EventFilter(subject=job_id))
        async for item in stream(self._stub.WatchEvents(request)):
            yield item.event.sequence

    def watch(self, from_sequence: int, types: list[int]):
        request = state_pb2.WatchEventsRequest(from_sequence=from_sequence, filter=common_pb2.EventFilter(types=types))
        return self._stub.WatchEvents(request)
