"""Every RPC of ringrift.orchestrator.v1.OrchestratorService as a typed method, sync (Methods) and asyncio
(AsyncMethods). Generated from protos/ by scripts/gen_protos.py; do not edit.

Each method takes the request message, or its fields as keyword arguments
(``client.get_job(job_id="...")``), and an optional ``timeout`` in seconds."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any, TypeVar

from ringrift.orchestrator.v1 import orchestrator_pb2

M = TypeVar("M")


def _request(cls: type[M], request: M | None, fields: dict[str, Any]) -> M:
    if request is None:
        return cls(**fields)
    if fields:
        raise TypeError("give the request message or its fields, not both")
    if not isinstance(request, cls):
        raise TypeError(f"expected {cls.__name__}, got {type(request).__name__}")
    return request


class Methods:
    """The gateway's RPCs over a blocking channel."""

    def _unary(self, method: str, request: Any, timeout: float | None) -> Any:
        raise NotImplementedError

    def _stream(self, method: str, request: Any, timeout: float | None) -> Iterator[Any]:
        raise NotImplementedError

    def get_cluster_status(self, request: orchestrator_pb2.GetClusterStatusRequest | None = None, /, *, timeout: float | None = None, **fields: Any) -> orchestrator_pb2.GetClusterStatusResponse:
        """Leader, epoch, control plane, nodes, jobs and loops in one answer (cached, single-flight)."""
        return self._unary("GetClusterStatus", _request(orchestrator_pb2.GetClusterStatusRequest, request, fields), timeout)  # type: ignore[no-any-return]

    def list_nodes(self, request: orchestrator_pb2.ListNodesRequest | None = None, /, *, timeout: float | None = None, **fields: Any) -> orchestrator_pb2.ListNodesResponse:
        """Members with capabilities and load."""
        return self._unary("ListNodes", _request(orchestrator_pb2.ListNodesRequest, request, fields), timeout)  # type: ignore[no-any-return]

    def submit_job(self, request: orchestrator_pb2.SubmitJobRequest | None = None, /, *, timeout: float | None = None, **fields: Any) -> orchestrator_pb2.SubmitJobResponse:
        """Submit a job."""
        return self._unary("SubmitJob", _request(orchestrator_pb2.SubmitJobRequest, request, fields), timeout)  # type: ignore[no-any-return]

    def submit_jobs(self, request: orchestrator_pb2.SubmitJobsRequest | None = None, /, *, timeout: float | None = None, **fields: Any) -> orchestrator_pb2.SubmitJobsResponse:
        """Submit up to 1000 jobs in one call: every item validated first (one invalid item, named jobs[<index>].<field>, refuses the whole batch), idempotent per item key."""
        return self._unary("SubmitJobs", _request(orchestrator_pb2.SubmitJobsRequest, request, fields), timeout)  # type: ignore[no-any-return]

    def cancel_job(self, request: orchestrator_pb2.CancelJobRequest | None = None, /, *, timeout: float | None = None, **fields: Any) -> orchestrator_pb2.CancelJobResponse:
        """Cancel a job."""
        return self._unary("CancelJob", _request(orchestrator_pb2.CancelJobRequest, request, fields), timeout)  # type: ignore[no-any-return]

    def get_job(self, request: orchestrator_pb2.GetJobRequest | None = None, /, *, timeout: float | None = None, **fields: Any) -> orchestrator_pb2.GetJobResponse:
        """One job."""
        return self._unary("GetJob", _request(orchestrator_pb2.GetJobRequest, request, fields), timeout)  # type: ignore[no-any-return]

    def list_jobs(self, request: orchestrator_pb2.ListJobsRequest | None = None, /, *, timeout: float | None = None, **fields: Any) -> orchestrator_pb2.ListJobsResponse:
        """Jobs by filter."""
        return self._unary("ListJobs", _request(orchestrator_pb2.ListJobsRequest, request, fields), timeout)  # type: ignore[no-any-return]

    def stream_job_logs(self, request: orchestrator_pb2.StreamJobLogsRequest | None = None, /, *, timeout: float | None = None, **fields: Any) -> Iterator[orchestrator_pb2.StreamJobLogsResponse]:
        """A job's output."""
        return self._stream("StreamJobLogs", _request(orchestrator_pb2.StreamJobLogsRequest, request, fields), timeout)

    def watch_events(self, request: orchestrator_pb2.WatchEventsRequest | None = None, /, *, timeout: float | None = None, **fields: Any) -> Iterator[orchestrator_pb2.WatchEventsResponse]:
        """The cluster event stream, resumable by sequence; from a sequence deleted past the event retention window it ends OUT_OF_RANGE naming the oldest available one."""
        return self._stream("WatchEvents", _request(orchestrator_pb2.WatchEventsRequest, request, fields), timeout)

    def list_models(self, request: orchestrator_pb2.ListModelsRequest | None = None, /, *, timeout: float | None = None, **fields: Any) -> orchestrator_pb2.ListModelsResponse:
        """Models of the registry."""
        return self._unary("ListModels", _request(orchestrator_pb2.ListModelsRequest, request, fields), timeout)  # type: ignore[no-any-return]

    def list_ratings(self, request: orchestrator_pb2.ListRatingsRequest | None = None, /, *, timeout: float | None = None, **fields: Any) -> orchestrator_pb2.ListRatingsResponse:
        """Ratings, with history."""
        return self._unary("ListRatings", _request(orchestrator_pb2.ListRatingsRequest, request, fields), timeout)  # type: ignore[no-any-return]

    def trigger_training(self, request: orchestrator_pb2.TriggerTrainingRequest | None = None, /, *, timeout: float | None = None, **fields: Any) -> orchestrator_pb2.TriggerTrainingResponse:
        """Ask for training of a config."""
        return self._unary("TriggerTraining", _request(orchestrator_pb2.TriggerTrainingRequest, request, fields), timeout)  # type: ignore[no-any-return]

    def rollback_model(self, request: orchestrator_pb2.RollbackModelRequest | None = None, /, *, timeout: float | None = None, **fields: Any) -> orchestrator_pb2.RollbackModelResponse:
        """Move a config's best model back to an earlier promoted model (operator); self-play follows the new best. `ringrift models rollback <config> [--to <model>]`."""
        return self._unary("RollbackModel", _request(orchestrator_pb2.RollbackModelRequest, request, fields), timeout)  # type: ignore[no-any-return]

    def quarantine_node(self, request: orchestrator_pb2.QuarantineNodeRequest | None = None, /, *, timeout: float | None = None, **fields: Any) -> orchestrator_pb2.QuarantineNodeResponse:
        """Quarantine a node: it takes no new work until the quarantine ends or is lifted."""
        return self._unary("QuarantineNode", _request(orchestrator_pb2.QuarantineNodeRequest, request, fields), timeout)  # type: ignore[no-any-return]

    def lift_quarantine(self, request: orchestrator_pb2.LiftQuarantineRequest | None = None, /, *, timeout: float | None = None, **fields: Any) -> orchestrator_pb2.LiftQuarantineResponse:
        """End a node's quarantine."""
        return self._unary("LiftQuarantine", _request(orchestrator_pb2.LiftQuarantineRequest, request, fields), timeout)  # type: ignore[no-any-return]

    def get_sync_status(self, request: orchestrator_pb2.GetSyncStatusRequest | None = None, /, *, timeout: float | None = None, **fields: Any) -> orchestrator_pb2.GetSyncStatusResponse:
        """Recent sync transfers and their state."""
        return self._unary("GetSyncStatus", _request(orchestrator_pb2.GetSyncStatusRequest, request, fields), timeout)  # type: ignore[no-any-return]

    def list_loops(self, request: orchestrator_pb2.ListLoopsRequest | None = None, /, *, timeout: float | None = None, **fields: Any) -> orchestrator_pb2.ListLoopsResponse:
        """Background loops and their health."""
        return self._unary("ListLoops", _request(orchestrator_pb2.ListLoopsRequest, request, fields), timeout)  # type: ignore[no-any-return]

    def pause_loop(self, request: orchestrator_pb2.PauseLoopRequest | None = None, /, *, timeout: float | None = None, **fields: Any) -> orchestrator_pb2.PauseLoopResponse:
        """Pause a background loop."""
        return self._unary("PauseLoop", _request(orchestrator_pb2.PauseLoopRequest, request, fields), timeout)  # type: ignore[no-any-return]

    def resume_loop(self, request: orchestrator_pb2.ResumeLoopRequest | None = None, /, *, timeout: float | None = None, **fields: Any) -> orchestrator_pb2.ResumeLoopResponse:
        """Resume a paused loop."""
        return self._unary("ResumeLoop", _request(orchestrator_pb2.ResumeLoopRequest, request, fields), timeout)  # type: ignore[no-any-return]

    def explain_placement(self, request: orchestrator_pb2.ExplainPlacementRequest | None = None, /, *, timeout: float | None = None, **fields: Any) -> orchestrator_pb2.ExplainPlacementResponse:
        """Why a job would run where."""
        return self._unary("ExplainPlacement", _request(orchestrator_pb2.ExplainPlacementRequest, request, fields), timeout)  # type: ignore[no-any-return]

    def explain_allocation(self, request: orchestrator_pb2.ExplainAllocationRequest | None = None, /, *, timeout: float | None = None, **fields: Any) -> orchestrator_pb2.ExplainAllocationResponse:
        """Why self-play is allocated as it is."""
        return self._unary("ExplainAllocation", _request(orchestrator_pb2.ExplainAllocationRequest, request, fields), timeout)  # type: ignore[no-any-return]

    def join_cluster(self, request: orchestrator_pb2.JoinClusterRequest | None = None, /, *, timeout: float | None = None, **fields: Any) -> orchestrator_pb2.JoinClusterResponse:
        """A node on another machine joins: a one-time join token (`ringrift certs join-token`) and a certificate request for its key; answers its certificate as agent <node_id>. Called on the gateway's token port (the node has no certificate yet; the token is the credential, used once). UNAUTHENTICATED for an unknown, expired or used token."""
        return self._unary("JoinCluster", _request(orchestrator_pb2.JoinClusterRequest, request, fields), timeout)  # type: ignore[no-any-return]

    def renew_certificate(self, request: orchestrator_pb2.RenewCertificateRequest | None = None, /, *, timeout: float | None = None, **fields: Any) -> orchestrator_pb2.RenewCertificateResponse:
        """A new certificate for the caller's own identity (a node renewing before expiry), for the key of the request."""
        return self._unary("RenewCertificate", _request(orchestrator_pb2.RenewCertificateRequest, request, fields), timeout)  # type: ignore[no-any-return]


class AsyncMethods:
    """The gateway's RPCs over an asyncio channel."""

    async def _unary(self, method: str, request: Any, timeout: float | None) -> Any:
        raise NotImplementedError

    def _stream(self, method: str, request: Any, timeout: float | None) -> AsyncIterator[Any]:
        raise NotImplementedError

    async def get_cluster_status(self, request: orchestrator_pb2.GetClusterStatusRequest | None = None, /, *, timeout: float | None = None, **fields: Any) -> orchestrator_pb2.GetClusterStatusResponse:
        """Leader, epoch, control plane, nodes, jobs and loops in one answer (cached, single-flight)."""
        return await self._unary("GetClusterStatus", _request(orchestrator_pb2.GetClusterStatusRequest, request, fields), timeout)  # type: ignore[no-any-return]

    async def list_nodes(self, request: orchestrator_pb2.ListNodesRequest | None = None, /, *, timeout: float | None = None, **fields: Any) -> orchestrator_pb2.ListNodesResponse:
        """Members with capabilities and load."""
        return await self._unary("ListNodes", _request(orchestrator_pb2.ListNodesRequest, request, fields), timeout)  # type: ignore[no-any-return]

    async def submit_job(self, request: orchestrator_pb2.SubmitJobRequest | None = None, /, *, timeout: float | None = None, **fields: Any) -> orchestrator_pb2.SubmitJobResponse:
        """Submit a job."""
        return await self._unary("SubmitJob", _request(orchestrator_pb2.SubmitJobRequest, request, fields), timeout)  # type: ignore[no-any-return]

    async def submit_jobs(self, request: orchestrator_pb2.SubmitJobsRequest | None = None, /, *, timeout: float | None = None, **fields: Any) -> orchestrator_pb2.SubmitJobsResponse:
        """Submit up to 1000 jobs in one call: every item validated first (one invalid item, named jobs[<index>].<field>, refuses the whole batch), idempotent per item key."""
        return await self._unary("SubmitJobs", _request(orchestrator_pb2.SubmitJobsRequest, request, fields), timeout)  # type: ignore[no-any-return]

    async def cancel_job(self, request: orchestrator_pb2.CancelJobRequest | None = None, /, *, timeout: float | None = None, **fields: Any) -> orchestrator_pb2.CancelJobResponse:
        """Cancel a job."""
        return await self._unary("CancelJob", _request(orchestrator_pb2.CancelJobRequest, request, fields), timeout)  # type: ignore[no-any-return]

    async def get_job(self, request: orchestrator_pb2.GetJobRequest | None = None, /, *, timeout: float | None = None, **fields: Any) -> orchestrator_pb2.GetJobResponse:
        """One job."""
        return await self._unary("GetJob", _request(orchestrator_pb2.GetJobRequest, request, fields), timeout)  # type: ignore[no-any-return]

    async def list_jobs(self, request: orchestrator_pb2.ListJobsRequest | None = None, /, *, timeout: float | None = None, **fields: Any) -> orchestrator_pb2.ListJobsResponse:
        """Jobs by filter."""
        return await self._unary("ListJobs", _request(orchestrator_pb2.ListJobsRequest, request, fields), timeout)  # type: ignore[no-any-return]

    def stream_job_logs(self, request: orchestrator_pb2.StreamJobLogsRequest | None = None, /, *, timeout: float | None = None, **fields: Any) -> AsyncIterator[orchestrator_pb2.StreamJobLogsResponse]:
        """A job's output."""
        return self._stream("StreamJobLogs", _request(orchestrator_pb2.StreamJobLogsRequest, request, fields), timeout)

    def watch_events(self, request: orchestrator_pb2.WatchEventsRequest | None = None, /, *, timeout: float | None = None, **fields: Any) -> AsyncIterator[orchestrator_pb2.WatchEventsResponse]:
        """The cluster event stream, resumable by sequence; from a sequence deleted past the event retention window it ends OUT_OF_RANGE naming the oldest available one."""
        return self._stream("WatchEvents", _request(orchestrator_pb2.WatchEventsRequest, request, fields), timeout)

    async def list_models(self, request: orchestrator_pb2.ListModelsRequest | None = None, /, *, timeout: float | None = None, **fields: Any) -> orchestrator_pb2.ListModelsResponse:
        """Models of the registry."""
        return await self._unary("ListModels", _request(orchestrator_pb2.ListModelsRequest, request, fields), timeout)  # type: ignore[no-any-return]

    async def list_ratings(self, request: orchestrator_pb2.ListRatingsRequest | None = None, /, *, timeout: float | None = None, **fields: Any) -> orchestrator_pb2.ListRatingsResponse:
        """Ratings, with history."""
        return await self._unary("ListRatings", _request(orchestrator_pb2.ListRatingsRequest, request, fields), timeout)  # type: ignore[no-any-return]

    async def trigger_training(self, request: orchestrator_pb2.TriggerTrainingRequest | None = None, /, *, timeout: float | None = None, **fields: Any) -> orchestrator_pb2.TriggerTrainingResponse:
        """Ask for training of a config."""
        return await self._unary("TriggerTraining", _request(orchestrator_pb2.TriggerTrainingRequest, request, fields), timeout)  # type: ignore[no-any-return]

    async def rollback_model(self, request: orchestrator_pb2.RollbackModelRequest | None = None, /, *, timeout: float | None = None, **fields: Any) -> orchestrator_pb2.RollbackModelResponse:
        """Move a config's best model back to an earlier promoted model (operator); self-play follows the new best. `ringrift models rollback <config> [--to <model>]`."""
        return await self._unary("RollbackModel", _request(orchestrator_pb2.RollbackModelRequest, request, fields), timeout)  # type: ignore[no-any-return]

    async def quarantine_node(self, request: orchestrator_pb2.QuarantineNodeRequest | None = None, /, *, timeout: float | None = None, **fields: Any) -> orchestrator_pb2.QuarantineNodeResponse:
        """Quarantine a node: it takes no new work until the quarantine ends or is lifted."""
        return await self._unary("QuarantineNode", _request(orchestrator_pb2.QuarantineNodeRequest, request, fields), timeout)  # type: ignore[no-any-return]

    async def lift_quarantine(self, request: orchestrator_pb2.LiftQuarantineRequest | None = None, /, *, timeout: float | None = None, **fields: Any) -> orchestrator_pb2.LiftQuarantineResponse:
        """End a node's quarantine."""
        return await self._unary("LiftQuarantine", _request(orchestrator_pb2.LiftQuarantineRequest, request, fields), timeout)  # type: ignore[no-any-return]

    async def get_sync_status(self, request: orchestrator_pb2.GetSyncStatusRequest | None = None, /, *, timeout: float | None = None, **fields: Any) -> orchestrator_pb2.GetSyncStatusResponse:
        """Recent sync transfers and their state."""
        return await self._unary("GetSyncStatus", _request(orchestrator_pb2.GetSyncStatusRequest, request, fields), timeout)  # type: ignore[no-any-return]

    async def list_loops(self, request: orchestrator_pb2.ListLoopsRequest | None = None, /, *, timeout: float | None = None, **fields: Any) -> orchestrator_pb2.ListLoopsResponse:
        """Background loops and their health."""
        return await self._unary("ListLoops", _request(orchestrator_pb2.ListLoopsRequest, request, fields), timeout)  # type: ignore[no-any-return]

    async def pause_loop(self, request: orchestrator_pb2.PauseLoopRequest | None = None, /, *, timeout: float | None = None, **fields: Any) -> orchestrator_pb2.PauseLoopResponse:
        """Pause a background loop."""
        return await self._unary("PauseLoop", _request(orchestrator_pb2.PauseLoopRequest, request, fields), timeout)  # type: ignore[no-any-return]

    async def resume_loop(self, request: orchestrator_pb2.ResumeLoopRequest | None = None, /, *, timeout: float | None = None, **fields: Any) -> orchestrator_pb2.ResumeLoopResponse:
        """Resume a paused loop."""
        return await self._unary("ResumeLoop", _request(orchestrator_pb2.ResumeLoopRequest, request, fields), timeout)  # type: ignore[no-any-return]

    async def explain_placement(self, request: orchestrator_pb2.ExplainPlacementRequest | None = None, /, *, timeout: float | None = None, **fields: Any) -> orchestrator_pb2.ExplainPlacementResponse:
        """Why a job would run where."""
        return await self._unary("ExplainPlacement", _request(orchestrator_pb2.ExplainPlacementRequest, request, fields), timeout)  # type: ignore[no-any-return]

    async def explain_allocation(self, request: orchestrator_pb2.ExplainAllocationRequest | None = None, /, *, timeout: float | None = None, **fields: Any) -> orchestrator_pb2.ExplainAllocationResponse:
        """Why self-play is allocated as it is."""
        return await self._unary("ExplainAllocation", _request(orchestrator_pb2.ExplainAllocationRequest, request, fields), timeout)  # type: ignore[no-any-return]

    async def join_cluster(self, request: orchestrator_pb2.JoinClusterRequest | None = None, /, *, timeout: float | None = None, **fields: Any) -> orchestrator_pb2.JoinClusterResponse:
        """A node on another machine joins: a one-time join token (`ringrift certs join-token`) and a certificate request for its key; answers its certificate as agent <node_id>. Called on the gateway's token port (the node has no certificate yet; the token is the credential, used once). UNAUTHENTICATED for an unknown, expired or used token."""
        return await self._unary("JoinCluster", _request(orchestrator_pb2.JoinClusterRequest, request, fields), timeout)  # type: ignore[no-any-return]

    async def renew_certificate(self, request: orchestrator_pb2.RenewCertificateRequest | None = None, /, *, timeout: float | None = None, **fields: Any) -> orchestrator_pb2.RenewCertificateResponse:
        """A new certificate for the caller's own identity (a node renewing before expiry), for the key of the request."""
        return await self._unary("RenewCertificate", _request(orchestrator_pb2.RenewCertificateRequest, request, fields), timeout)  # type: ignore[no-any-return]
