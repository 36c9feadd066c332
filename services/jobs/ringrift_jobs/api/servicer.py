"""JobService servicer: decode -> lifecycle -> encode."""

from __future__ import annotations

import math

from ringrift.common.v1 import common_pb2
from ringrift.jobs.v1 import jobs_pb2, jobs_pb2_grpc
from ringrift.state.v1 import state_pb2
from ringrift_contracts.check import Check
from ringrift_contracts.jobs import JobState
from ringrift_contracts.limits import MAX_BATCH
from ringrift_jobs.adapters import wire
from ringrift_jobs.adapters.state import StateJobStore
from ringrift_jobs.domain.lifecycle import JobLifecycle
from ringrift_jobs.domain.model import Report
from ringrift_runtime.errors import PermissionDenied
from ringrift_runtime.security.authz import caller
from ringrift_runtime.tracing import current_traceparent

JOB_EVENTS = [
    common_pb2.EVENT_TYPE_JOB_SUBMITTED,
    common_pb2.EVENT_TYPE_JOB_SCHEDULED,
    common_pb2.EVENT_TYPE_JOB_STARTED,
    common_pb2.EVENT_TYPE_JOB_SUCCEEDED,
    common_pb2.EVENT_TYPE_JOB_FAILED,
    common_pb2.EVENT_TYPE_JOB_CANCELLED,
    common_pb2.EVENT_TYPE_JOB_LOST,
    common_pb2.EVENT_TYPE_JOB_RETRIED,
]
MAX_GAMES = 10_000_000
STATE_VALUES = frozenset(int(s) for s in JobState)


def _traced(spec: common_pb2.JobSpec) -> common_pb2.JobSpec:
    """The spec with the current call's trace context when it names none: the job's
    dispatch, run and reports then join the trace of its submission."""
    if spec.traceparent:
        return spec
    traceparent = current_traceparent()
    if not traceparent:
        return spec
    stamped = common_pb2.JobSpec()
    stamped.CopyFrom(spec)
    stamped.traceparent = traceparent
    return stamped


def _job_id(request) -> str:
    check = Check()
    check.job_id("job_id", request.job_id)
    check.raise_if_invalid()
    return str(request.job_id)


def _leader_epoch(epoch: int) -> None:
    check = Check()
    check.leader_epoch("epoch", epoch)
    check.raise_if_invalid()


def _report(request: jobs_pb2.ReportJobEventRequest) -> Report:
    check = Check()
    check.job_id("job_id", request.job_id)
    check.check("attempt", request.attempt >= 1, "must be 1 or more")
    check.node_id("node_id", request.node_id)
    check.check("state", request.state in STATE_VALUES, "must be RUNNING, SUCCEEDED, FAILED, CANCELLED or LOST")
    check.check("cpu_seconds", math.isfinite(request.cpu_seconds) and request.cpu_seconds >= 0, "must be 0 or more")
    check.raise_if_invalid()
    reporter = caller()
    if reporter is not None and request.node_id != reporter.name:  # NodeRestriction: a node speaks for itself
        raise PermissionDenied(f"{reporter} may report only its own attempts, not {request.node_id[:64]}'s")
    return Report(
        job_id=request.job_id,
        attempt=request.attempt,
        node_id=request.node_id,
        state=JobState(request.state),
        exit_code=request.exit_code,
        error=request.error,
        result_json=request.result_json,
        reported_by=reporter.name if reporter is not None else "",
        cpu_seconds=request.cpu_seconds,
    )


class JobServicer(jobs_pb2_grpc.JobServiceServicer):
    def __init__(self, lifecycle: JobLifecycle, store: StateJobStore) -> None:
        self._jobs = lifecycle
        self._store = store

    async def _submit(self, specs: list[tuple[common_pb2.JobSpec, str]], epoch: int = 0) -> list[common_pb2.Job]:
        return [job for job, _ in await self._submit_all(specs, epoch)]

    async def _submit_all(
        self, specs: list[tuple[common_pb2.JobSpec, str]], epoch: int = 0
    ) -> list[tuple[common_pb2.Job, bool]]:
        created = await self._jobs.submit([(wire.spec(_traced(s)), key) for s, key in specs], epoch)
        return [(job.wire, fresh) for job, fresh in created]

    async def SubmitJob(self, request, context):
        created = await self._jobs.submit([(wire.spec(_traced(request.spec)), request.idempotency_key)])
        ((job, fresh),) = created
        return jobs_pb2.SubmitJobResponse(job=job.wire, created=fresh)

    async def SubmitJobs(self, request, context):
        check = Check()
        check.batch("jobs", len(request.jobs))
        check.raise_if_invalid()
        created = await self._submit_all([(j.spec, j.idempotency_key) for j in request.jobs])
        return jobs_pb2.SubmitJobsResponse(jobs=[job for job, _ in created], created=[fresh for _, fresh in created])

    async def SpawnJob(self, request, context):
        _leader_epoch(request.epoch)
        (job,) = await self._submit([(request.spec, request.idempotency_key)], request.epoch)
        await self._jobs.dispatch(MAX_BATCH, request.epoch, only={job.job_id})
        return jobs_pb2.SpawnJobResponse(job=await self._store.get_message(job.job_id))

    async def CancelJob(self, request, context):
        return jobs_pb2.CancelJobResponse(job=(await self._jobs.cancel(_job_id(request), request.reason)).wire)

    async def GetJob(self, request, context):
        return jobs_pb2.GetJobResponse(job=await self._store.get_message(_job_id(request)))

    async def ListJobs(self, request, context):
        job_filter = state_pb2.JobFilter(
            states=request.states, kind=request.kind, config_key=request.config_key, node_id=request.node_id
        )
        page = await self._store.list_page(job_filter, request.page.page_size, request.page.page_token)
        return jobs_pb2.ListJobsResponse(jobs=page.jobs, next_page_token=page.next_page_token)

    async def WatchJobs(self, request, context):
        async for item in self._store.watch(request.from_sequence, JOB_EVENTS):
            if request.job_id and item.event.subject != request.job_id:
                continue
            job = await self._store.get_message(item.event.subject)
            yield jobs_pb2.WatchJobsResponse(job=job, sequence=item.event.sequence)

    async def StreamJobLogs(self, request, context):
        async for chunk in self._jobs.logs(_job_id(request), request.attempt, request.follow):
            yield jobs_pb2.StreamJobLogsResponse(stream=chunk.stream, data=chunk.data)

    async def ReportJobEvent(self, request, context):
        report = _report(request)
        applied = await self._jobs.report(report)
        # Only a RUNNING report that did not apply can be about an attempt that should stop.
        superseded = not applied and report.state == JobState.RUNNING and await self._jobs.superseded(report)
        return jobs_pb2.ReportJobEventResponse(applied=applied, superseded=superseded)

    async def DispatchPendingJobs(self, request, context):
        _leader_epoch(request.epoch)
        dispatched, pending = await self._jobs.dispatch(request.limit or MAX_BATCH, request.epoch)
        return jobs_pb2.DispatchPendingJobsResponse(
            dispatched=dispatched, still_pending=pending, backlog_empty=self._jobs.backlog_empty
        )

    async def ReapJobs(self, request, context):
        _leader_epoch(request.epoch)
        lost, timed_out, unverified = await self._jobs.reap(request.epoch)
        return jobs_pb2.ReapJobsResponse(lost=lost, timed_out=timed_out, unverified=unverified)

    async def RunDistributedSelfplay(self, request, context):
        check = Check()
        check.config_key("config_key", request.config_key)
        check.check("games", 1 <= request.games <= MAX_GAMES, f"must be between 1 and {MAX_GAMES:,}")
        check.check("max_jobs", request.max_jobs <= MAX_BATCH, f"must be at most {MAX_BATCH}")
        check.check("params", "games" not in request.params, "set the number of games with the games field")
        check.raise_if_invalid()
        specs = []
        for index, games in enumerate(self._jobs.selfplay_shares(request.games, request.max_jobs)):
            params = {**request.params, "games": str(games)}
            key = f"{request.idempotency_key}/{index}" if request.idempotency_key else ""
            specs.append((common_pb2.JobSpec(kind="selfplay", config_key=request.config_key, params=params), key))
        return jobs_pb2.RunDistributedSelfplayResponse(jobs=await self._submit(specs))

    async def _single(self, kind: str, role: int, request) -> common_pb2.Job:
        check = Check()
        check.config_key("config_key", request.config_key)
        if request.node_id:
            check.node_id("node_id", request.node_id)
        check.raise_if_invalid()
        requirements = common_pb2.ResourceRequirements(
            role=role, preferred_node_ids=[request.node_id] if request.node_id else []
        )
        spec = common_pb2.JobSpec(
            kind=kind, config_key=request.config_key, params=request.params, requirements=requirements
        )
        (job,) = await self._submit([(spec, request.idempotency_key)])
        return job

    async def RunTraining(self, request, context):
        return jobs_pb2.RunTrainingResponse(job=await self._single("train", common_pb2.NODE_ROLE_TRAINING, request))

    async def ExportTrainingData(self, request, context):
        job = await self._single("export", common_pb2.NODE_ROLE_EXPORT, request)
        return jobs_pb2.ExportTrainingDataResponse(job=job)

    async def CleanupOldCompletedJobs(self, request, context):
        _leader_epoch(request.epoch)
        older_than = request.older_than_seconds or int(self._jobs.retention_seconds)
        moved, deleted = await self._store.archive(older_than, request.epoch, int(self._jobs.history_seconds))
        return jobs_pb2.CleanupOldCompletedJobsResponse(moved=moved, deleted=deleted)
