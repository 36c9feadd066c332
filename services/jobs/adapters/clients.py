"""JobService's clients: StateService (the job store), NodeSelector, and the agents."""

from __future__ import annotations

import grpc

from ringrift.agent.v1 import agent_pb2, agent_pb2_grpc
from ringrift.common.v1 import common_pb2
from ringrift.nodes.v1 import nodes_pb2, nodes_pb2_grpc
from ringrift.state.v1 import state_pb2, state_pb2_grpc
from ringrift_runtime.grpc.calls import call
from ringrift_runtime.grpc.client import ChannelFactory


class JobStore:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = state_pb2_grpc.StateServiceStub(channel)

    async def create(self, jobs: list[state_pb2.NewJob], epoch: int = 0) -> list[tuple[common_pb2.Job, bool]]:
        reply = await call(self._stub.CreateJobs(state_pb2.CreateJobsRequest(jobs=jobs, epoch=epoch)))
        return list(zip(reply.jobs, reply.created))

    async def get(self, job_id: str) -> common_pb2.Job:
        return (await call(self._stub.GetJob(state_pb2.GetJobRequest(job_id=job_id)))).job

    async def list(self, job_filter: state_pb2.JobFilter, page_size: int = 1000, token: str = "") -> state_pb2.ListJobsResponse:
        page = common_pb2.PageRequest(page_size=page_size, page_token=token)
        return await call(self._stub.ListJobs(state_pb2.ListJobsRequest(filter=job_filter, page=page)))

    async def all(self, job_filter: state_pb2.JobFilter) -> list[common_pb2.Job]:
        jobs, token = [], ""
        while True:
            page = await self.list(job_filter, 1000, token)
            jobs.extend(page.jobs)
            token = page.next_page_token
            if not token:
                return jobs

    async def transition(
        self, transitions: list[state_pb2.JobTransition], epoch: int = 0, with_jobs: bool = True
    ) -> list[state_pb2.TransitionOutcome]:
        if not transitions:
            return []
        request = state_pb2.TransitionJobsRequest(transitions=transitions, epoch=epoch, omit_jobs=not with_jobs)
        return list((await call(self._stub.TransitionJobs(request))).outcomes)

    async def archive(self, older_than_seconds: int, epoch: int) -> int:
        request = state_pb2.ArchiveJobsRequest(older_than_seconds=older_than_seconds, epoch=epoch)
        return (await call(self._stub.ArchiveJobs(request))).moved

    async def epoch(self) -> int:
        return (await call(self._stub.GetClusterEpoch(state_pb2.GetClusterEpochRequest()))).epoch

    def watch(self, from_sequence: int, types: list[int]):
        request = state_pb2.WatchEventsRequest(from_sequence=from_sequence, filter=common_pb2.EventFilter(types=types))
        return self._stub.WatchEvents(request)


class Placement:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = nodes_pb2_grpc.NodeSelectorServiceStub(channel)

    async def rank(self, spec: common_pb2.JobSpec, top_k: int, exclude: list[str]) -> list[nodes_pb2.NodeScore]:
        request = nodes_pb2.RankNodesRequest(spec=spec, top_k=top_k, exclude_node_ids=exclude)
        return list((await call(self._stub.RankNodes(request))).ranked)


class Agents:
    """One channel per agent address, reused."""

    def __init__(self, factory: ChannelFactory) -> None:
        self._factory = factory
        self._channels: dict[str, grpc.aio.Channel] = {}

    def stub(self, address: str) -> agent_pb2_grpc.NodeAgentServiceStub:
        channel = self._channels.get(address)
        if channel is None:
            channel = self._channels[address] = self._factory.channel(address)
        return agent_pb2_grpc.NodeAgentServiceStub(channel)

    async def run(self, address: str, request: agent_pb2.RunJobRequest) -> agent_pb2.RunJobResponse:
        return await self.stub(address).RunJob(request)

    async def cancel(self, address: str, job_id: str, attempt: int, epoch: int) -> None:
        await self.stub(address).CancelJob(agent_pb2.CancelJobRequest(job_id=job_id, attempt=attempt, epoch=epoch))

    async def templates(self, address: str) -> list[agent_pb2.JobTemplate]:
        return list((await call(self.stub(address).ListJobTemplates(agent_pb2.ListJobTemplatesRequest()))).templates)

    def logs(self, address: str, job_id: str, attempt: int, follow: bool):
        return self.stub(address).StreamJobLogs(agent_pb2.StreamJobLogsRequest(job_id=job_id, attempt=attempt, follow=follow))

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
