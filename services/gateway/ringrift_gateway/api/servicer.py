"""OrchestratorService servicer: a thin facade. Status and nodes come from this
replica's watched views; jobs, events, models, ratings, placement, allocation and sync
status are passed to the managers; mutations are intents the leader carries out (a
submitted job is dispatched by the leader; a training request is stored and the leader's
training-trigger loop starts it; a pause or resume is stored and the leading replica's
LoopManager follows it within a second). Cluster status is single-flight cached."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from ringrift.jobs.v1 import jobs_pb2
from ringrift.orchestrator.v1 import orchestrator_pb2, orchestrator_pb2_grpc
from ringrift_contracts.check import Check
from ringrift_gateway.adapters.authority import CertificateAuthority
from ringrift_gateway.adapters.clients.jobs import JobsClient
from ringrift_gateway.adapters.clients.nodes import NodesClient
from ringrift_gateway.adapters.clients.selfplay import SelfplayClient
from ringrift_gateway.adapters.clients.state import StateClient
from ringrift_gateway.adapters.clients.sync import SyncClient
from ringrift_gateway.adapters.clients.training import TrainingClient
from ringrift_gateway.api.status import ClusterStatus, loop_status
from ringrift_gateway.domain.loops import LoopManager
from ringrift_gateway.domain.loops.jobs import DispatchWakes
from ringrift_gateway.domain.loops.training import INTENTS, training_intent_key
from ringrift_runtime.errors import WrongState
from ringrift_runtime.grpc.times import to_timestamp
from ringrift_runtime.security.authz import caller


@dataclass(frozen=True)
class Clients:
    """The services the facade passes calls to, one client each."""

    state: StateClient
    jobs: JobsClient
    nodes: NodesClient
    selfplay: SelfplayClient
    sync: SyncClient
    training: TrainingClient


class OrchestratorServicer(orchestrator_pb2_grpc.OrchestratorServiceServicer):
    def __init__(
        self,
        view,
        clients: Clients,
        status: ClusterStatus,
        loops: LoopManager,
        configs: list[str] | None = None,
        authority: CertificateAuthority | None = None,
        wakes: DispatchWakes | None = None,
    ) -> None:
        self._view = view  # ringrift_gateway.main.ClusterView
        self._clients = clients
        self._status = status
        self._loops = loops
        self._configs = configs or []  # the configs this cluster trains
        self._authority = authority  # signs joining and renewing nodes' certificates
        self._wakes = wakes or DispatchWakes(loops)  # a submission here wakes dispatch when this replica leads

    def _signer(self) -> CertificateAuthority:
        if self._authority is None:
            raise WrongState("this gateway does not sign certificates (an insecure cluster)")
        return self._authority

    async def JoinCluster(self, request, context):
        check = Check()
        check.require("join_token", request.join_token)
        check.max_length("join_token", request.join_token, 256)
        check.node_id("node_id", request.node_id)
        check.raise_if_invalid()
        signer = self._signer()
        cert, ca, expires = await signer.sign_join(request.join_token, request.node_id, request.csr_pem)
        return orchestrator_pb2.JoinClusterResponse(
            certificate_pem=cert,
            ca_pem=ca,
            cluster=signer.cluster,
            expires_at=to_timestamp(expires.timestamp()),
            gateway_address=signer.address,
        )

    async def RenewCertificate(self, request, context):
        cert, expires = await self._signer().renew(caller(), request.csr_pem)
        return orchestrator_pb2.RenewCertificateResponse(
            certificate_pem=cert, expires_at=to_timestamp(expires.timestamp())
        )

    async def TriggerTraining(self, request, context):
        check = Check()
        check.trained_config("config_key", request.config_key, self._configs)
        check.raise_if_invalid()
        # An intent in StateService: any replica may take the request; the leading gateway
        # carries it out on its next training-trigger round.
        intent = json.dumps({"force": request.force, "requested_at": time.time()}).encode()
        await self._clients.state.update_state(INTENTS, training_intent_key(request.config_key), lambda _: intent)
        return orchestrator_pb2.TriggerTrainingResponse(
            accepted=True, reason="queued: the leading gateway starts it on its next training-trigger round"
        )

    async def RollbackModel(self, request, context):
        check = Check()
        check.trained_config("config_key", request.config_key, self._configs)
        check.record_id("to_model_id", request.to_model_id, required=False)
        check.check("reason", len(request.reason) <= 500, "must be at most 500 characters")
        check.raise_if_invalid()
        # An operator's change carried out now by any replica: under the cluster's current
        # epoch, so a leader elected since fences it out like any of its predecessor's writes.
        epoch = (await self._clients.state.get_epoch()).epoch
        reply = await self._clients.training.rollback(request.config_key, request.to_model_id, request.reason, epoch)
        return orchestrator_pb2.RollbackModelResponse(best=reply.best, archived_model_ids=reply.archived_model_ids)

    async def GetSyncStatus(self, request, context):
        transfers = await self._clients.state.sync_transfers(request.plan_id)
        plans = [await self._clients.sync.plan(request.plan_id)] if request.plan_id else []
        return orchestrator_pb2.GetSyncStatusResponse(transfers=transfers, plans=plans)

    async def ExplainAllocation(self, request, context):
        check = Check()
        if request.node_id:
            check.node_id("node_id", request.node_id)
        check.raise_if_invalid()
        return orchestrator_pb2.ExplainAllocationResponse(
            terms=await self._clients.selfplay.explain_allocation(request.node_id)
        )

    async def SubmitJob(self, request, context):
        reply = await self._clients.jobs.submit(request.spec, request.idempotency_key)
        if reply.created:
            self._wakes.submitted([reply.job.job_id])
        return orchestrator_pb2.SubmitJobResponse(job=reply.job, created=reply.created)

    async def SubmitJobs(self, request, context):
        # JobService validates every item (naming jobs[<index>].<field>) and the batch size.
        reply = await self._clients.jobs.submit_many([(j.spec, j.idempotency_key) for j in request.jobs])
        self._wakes.submitted(job.job_id for job, created in zip(reply.jobs, reply.created, strict=True) if created)
        return orchestrator_pb2.SubmitJobsResponse(jobs=reply.jobs, created=reply.created)

    async def CancelJob(self, request, context):
        return orchestrator_pb2.CancelJobResponse(job=await self._clients.jobs.cancel(request.job_id, request.reason))

    async def GetJob(self, request, context):
        return orchestrator_pb2.GetJobResponse(job=await self._clients.jobs.get(request.job_id))

    async def ListJobs(self, request, context):
        reply = await self._clients.jobs.list_jobs(request)
        return orchestrator_pb2.ListJobsResponse(jobs=reply.jobs, next_page_token=reply.next_page_token)

    async def StreamJobLogs(self, request, context):
        async for chunk in self._clients.jobs.logs(request.job_id, request.attempt, request.follow):
            yield orchestrator_pb2.StreamJobLogsResponse(
                data=chunk.data, stderr=chunk.stream == jobs_pb2.LOG_STREAM_STDERR
            )

    async def WatchEvents(self, request, context):
        async for item in self._clients.state.watch_events(request.from_sequence, request.filter):
            yield orchestrator_pb2.WatchEventsResponse(event=item.event)

    async def ListModels(self, request, context):
        reply = await self._clients.state.models(request.config_key, request.statuses)
        return orchestrator_pb2.ListModelsResponse(models=reply.models, best_model_by_config=reply.best_model_by_config)

    async def ListRatings(self, request, context):
        return orchestrator_pb2.ListRatingsResponse(
            ratings=await self._clients.state.ratings(request.config_key, request.include_history)
        )

    async def ExplainPlacement(self, request, context):
        return orchestrator_pb2.ExplainPlacementResponse(scores=await self._clients.nodes.explain(request.spec))

    async def GetClusterStatus(self, request, context):
        return await self._status.get()

    async def ListLoops(self, request, context):
        return orchestrator_pb2.ListLoopsResponse(loops=[loop_status(r) for r in await self._status.loops()])

    def _check_loop(self, name: str) -> None:
        check = Check()
        check.check("name", bool(name), "is required: one of " + ", ".join(self._loops.names))
        check.check(
            "name",
            not name or name in self._loops.names,
            f"is not a loop of this gateway; loops are: {', '.join(self._loops.names)}",
        )
        check.raise_if_invalid()

    async def PauseLoop(self, request, context):
        self._check_loop(request.name)
        return orchestrator_pb2.PauseLoopResponse(loop=loop_status(await self._loops.set_paused(request.name, True)))

    async def ResumeLoop(self, request, context):
        self._check_loop(request.name)
        return orchestrator_pb2.ResumeLoopResponse(loop=loop_status(await self._loops.set_paused(request.name, False)))

    async def ListNodes(self, request, context):
        return orchestrator_pb2.ListNodesResponse(
            nodes=self._view.nodes(request.include_unschedulable), quarantines=self._view.quarantines()
        )

    async def QuarantineNode(self, request, context):
        # NodeSelector validates (naming the fields) and records the caller: this replica;
        # the operator is in the audit event.
        quarantine = await self._clients.nodes.quarantine(request.node_id, request.reason, request.duration_seconds)
        return orchestrator_pb2.QuarantineNodeResponse(quarantine=quarantine)

    async def LiftQuarantine(self, request, context):
        return orchestrator_pb2.LiftQuarantineResponse(
            lifted=await self._clients.nodes.lift_quarantine(request.node_id)
        )
