"""The managers behind the gateway's facade RPCs. Failed calls raise the taxonomy error
they stand for, so a field violation, NOT_FOUND or an unreachable manager reaches the
caller as a clear status."""

from __future__ import annotations

import json
import time

from ringrift.common.v1 import common_pb2
from ringrift.jobs.v1 import jobs_pb2, jobs_pb2_grpc
from ringrift.nodes.v1 import nodes_pb2, nodes_pb2_grpc
from ringrift.selfplay.v1 import selfplay_pb2, selfplay_pb2_grpc
from ringrift.state.v1 import state_pb2, state_pb2_grpc
from ringrift.sync.v1 import sync_pb2, sync_pb2_grpc
from ringrift_runtime.errors import Conflict
from ringrift_runtime.grpc.calls import call, stream


INTENTS = "intents"


def training_intent_key(config_key: str) -> str:
    return f"train/{config_key}"


class Managers:
    def __init__(self, state_channel, jobs_channel, nodes_channel, selfplay_channel=None, sync_channel=None) -> None:
        self.state = state_pb2_grpc.StateServiceStub(state_channel)
        self.jobs = jobs_pb2_grpc.JobServiceStub(jobs_channel)
        self.nodes = nodes_pb2_grpc.NodeSelectorServiceStub(nodes_channel)
        self.selfplay = selfplay_pb2_grpc.SelfplaySchedulerServiceStub(selfplay_channel) if selfplay_channel else None
        self.sync = sync_pb2_grpc.SyncPlannerServiceStub(sync_channel) if sync_channel else None

    async def explain_allocation(self, node_id: str) -> list:
        request = selfplay_pb2.ExplainAllocationRequest(node_id=node_id)
        return list((await call(self.selfplay.ExplainAllocation(request))).terms)

    async def sync_status(self, plan_id: str):
        """Transfers (of one plan, or the latest) and the plan itself when named."""
        transfers = await call(self.state.ListSyncTransfers(state_pb2.ListSyncTransfersRequest(
            plan_id=plan_id, page=common_pb2.PageRequest(page_size=500))))
        plans = []
        if plan_id:
            plans.append((await call(self.sync.GetSyncPlan(sync_pb2.GetSyncPlanRequest(plan_id=plan_id)))).plan)
        return list(transfers.transfers), plans

    async def request_training(self, config_key: str, force: bool) -> None:
        """Record the request as an intent in StateService; the leading gateway carries
        it out on its next training-trigger round (any replica may take the request)."""
        key = training_intent_key(config_key)
        for _ in range(3):
            stored = await call(self.state.LoadState(state_pb2.LoadStateRequest(namespace=INTENTS, key=key)))
            value = json.dumps({"force": force, "requested_at": time.time()}).encode()
            try:
                await call(self.state.PersistState(state_pb2.PersistStateRequest(
                    namespace=INTENTS, key=key, value=value, expected_version=stored.version if stored.found else 0)))
                return
            except Conflict:
                continue  # another replica wrote it at the same time: read again
        raise Conflict(f"training request for {config_key} kept changing; try again")

    async def submit(self, spec: common_pb2.JobSpec, key: str) -> jobs_pb2.SubmitJobResponse:
        return await call(self.jobs.SubmitJob(jobs_pb2.SubmitJobRequest(spec=spec, idempotency_key=key)))

    async def cancel(self, job_id: str, reason: str) -> common_pb2.Job:
        return (await call(self.jobs.CancelJob(jobs_pb2.CancelJobRequest(job_id=job_id, reason=reason)))).job

    async def get(self, job_id: str) -> common_pb2.Job:
        return (await call(self.jobs.GetJob(jobs_pb2.GetJobRequest(job_id=job_id)))).job

    async def list_jobs(self, request) -> jobs_pb2.ListJobsResponse:
        return await call(self.jobs.ListJobs(jobs_pb2.ListJobsRequest(
            states=request.states, kind=request.kind, config_key=request.config_key, node_id=request.node_id,
            page=request.page)))

    def logs(self, job_id: str, attempt: int, follow: bool):
        return stream(self.jobs.StreamJobLogs(jobs_pb2.StreamJobLogsRequest(job_id=job_id, attempt=attempt, follow=follow)))

    def events(self, from_sequence: int, event_filter: common_pb2.EventFilter):
        return stream(self.state.WatchEvents(state_pb2.WatchEventsRequest(from_sequence=from_sequence, filter=event_filter)))

    async def cluster_stats(self) -> state_pb2.GetClusterStatsResponse:
        return await call(self.state.GetClusterStats(state_pb2.GetClusterStatsRequest()))

    async def best_models(self) -> dict[str, str]:
        reply = await call(self.state.GetBestModels(state_pb2.GetBestModelsRequest()))
        return {m.config_key: m.model_id for m in reply.models}

    async def recent_events(self, limit: int) -> list[common_pb2.Event]:
        """The newest ``limit`` events, oldest first."""
        stats = await self.cluster_stats()
        after = max(0, stats.last_event_sequence - limit)
        reply = await call(self.state.ListEvents(state_pb2.ListEventsRequest(after_sequence=after, limit=limit)))
        return list(reply.events)

    async def models(self, config_key: str, statuses) -> state_pb2.ListModelsResponse:
        return await call(self.state.ListModels(state_pb2.ListModelsRequest(config_key=config_key, statuses=statuses)))

    async def ratings(self, config_key: str, include_history: bool) -> list[common_pb2.Rating]:
        request = state_pb2.ListRatingsRequest(config_key=config_key, include_history=include_history)
        return list((await call(self.state.ListRatings(request))).ratings)

    async def explain(self, spec: common_pb2.JobSpec) -> list[nodes_pb2.NodeScore]:
        return list((await call(self.nodes.ExplainPlacement(nodes_pb2.ExplainPlacementRequest(spec=spec)))).scores)
