"""OrchestratorService servicer: a thin facade. Status and nodes come from this
replica's watched views; jobs, events, models, ratings, placement, allocation and sync
status are passed to the managers; mutations are intents the leader carries out (a
submitted job is dispatched by the leader; a training request is stored and the leader's
training-trigger loop starts it; a pause or resume is stored and the leading replica's
LoopManager follows it within a second). Cluster status is single-flight cached."""

from __future__ import annotations

from ringrift.jobs.v1 import jobs_pb2
from ringrift.orchestrator.v1 import orchestrator_pb2, orchestrator_pb2_grpc
from ringrift_gateway.api.status import loop_status
from ringrift_runtime.validation import Validator


class OrchestratorServicer(orchestrator_pb2_grpc.OrchestratorServiceServicer):
    def __init__(self, view, managers, status, loops, configs: list[str] | None = None) -> None:
        self._view = view  # ringrift_gateway.main.ClusterView
        self._managers = managers  # ringrift_gateway.adapters.facade.Managers
        self._status = status  # ringrift_gateway.api.status.ClusterStatus
        self._loops = loops  # ringrift_gateway.domain.loops.LoopManager
        self._configs = configs or []  # the configs this cluster trains

    async def TriggerTraining(self, request, context):
        check = Validator()
        check.config_key("config_key", request.config_key)
        if request.config_key and self._configs:
            check.check("config_key", request.config_key in self._configs,
                        f"is not one of the configs this cluster trains ({', '.join(self._configs)})")
        check.raise_if_invalid()
        await self._managers.request_training(request.config_key, request.force)
        return orchestrator_pb2.TriggerTrainingResponse(
            accepted=True, reason="queued: the leading gateway starts it on its next training-trigger round")

    async def GetSyncStatus(self, request, context):
        transfers, plans = await self._managers.sync_status(request.plan_id)
        return orchestrator_pb2.GetSyncStatusResponse(transfers=transfers, plans=plans)

    async def ExplainAllocation(self, request, context):
        check = Validator()
        if request.node_id:
            check.node_id("node_id", request.node_id)
        check.raise_if_invalid()
        return orchestrator_pb2.ExplainAllocationResponse(terms=await self._managers.explain_allocation(request.node_id))

    async def SubmitJob(self, request, context):
        reply = await self._managers.submit(request.spec, request.idempotency_key)
        return orchestrator_pb2.SubmitJobResponse(job=reply.job, created=reply.created)

    async def CancelJob(self, request, context):
        return orchestrator_pb2.CancelJobResponse(job=await self._managers.cancel(request.job_id, request.reason))

    async def GetJob(self, request, context):
        return orchestrator_pb2.GetJobResponse(job=await self._managers.get(request.job_id))

    async def ListJobs(self, request, context):
        reply = await self._managers.list_jobs(request)
        return orchestrator_pb2.ListJobsResponse(jobs=reply.jobs, next_page_token=reply.next_page_token)

    async def StreamJobLogs(self, request, context):
        async for chunk in self._managers.logs(request.job_id, request.attempt, request.follow):
            yield orchestrator_pb2.StreamJobLogsResponse(data=chunk.data, stderr=chunk.stream == jobs_pb2.LOG_STREAM_STDERR)

    async def WatchEvents(self, request, context):
        async for item in self._managers.events(request.from_sequence, request.filter):
            yield orchestrator_pb2.WatchEventsResponse(event=item.event)

    async def ListModels(self, request, context):
        reply = await self._managers.models(request.config_key, request.statuses)
        return orchestrator_pb2.ListModelsResponse(models=reply.models, best_model_by_config=reply.best_model_by_config)

    async def ListRatings(self, request, context):
        return orchestrator_pb2.ListRatingsResponse(
            ratings=await self._managers.ratings(request.config_key, request.include_history))

    async def ExplainPlacement(self, request, context):
        return orchestrator_pb2.ExplainPlacementResponse(scores=await self._managers.explain(request.spec))

    async def GetClusterStatus(self, request, context):
        return await self._status.get()

    async def ListLoops(self, request, context):
        return orchestrator_pb2.ListLoopsResponse(loops=[loop_status(r) for r in await self._status.loops()])

    def _check_loop(self, name: str) -> None:
        check = Validator()
        check.check("name", bool(name), "is required: one of " + ", ".join(self._loops.names))
        check.check("name", not name or name in self._loops.names,
                    f"is not a loop of this gateway; loops are: {', '.join(self._loops.names)}")
        check.raise_if_invalid()

    async def PauseLoop(self, request, context):
        self._check_loop(request.name)
        return orchestrator_pb2.PauseLoopResponse(loop=loop_status(await self._loops.set_paused(request.name, True)))

    async def ResumeLoop(self, request, context):
        self._check_loop(request.name)
        return orchestrator_pb2.ResumeLoopResponse(loop=loop_status(await self._loops.set_paused(request.name, False)))

    async def ListNodes(self, request, context):
        return orchestrator_pb2.ListNodesResponse(nodes=self._view.nodes(request.include_unschedulable))
