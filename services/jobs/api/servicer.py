"""JobService servicer: decode -> lifecycle -> encode."""

from __future__ import annotations

import re

from ringrift.common.v1 import common_pb2
from ringrift.jobs.v1 import jobs_pb2, jobs_pb2_grpc
from ringrift.state.v1 import state_pb2
from ringrift_jobs.api.lifecycle import JobLifecycle
from ringrift_runtime.errors import NotFound
from ringrift_runtime.validation import Validator

JOB_ID = re.compile(r"^[0-9A-Za-z][0-9A-Za-z_-]{0,63}$")
JOB_EVENTS = [
    common_pb2.EVENT_TYPE_JOB_SUBMITTED, common_pb2.EVENT_TYPE_JOB_SCHEDULED, common_pb2.EVENT_TYPE_JOB_STARTED,
    common_pb2.EVENT_TYPE_JOB_SUCCEEDED, common_pb2.EVENT_TYPE_JOB_FAILED, common_pb2.EVENT_TYPE_JOB_CANCELLED,
    common_pb2.EVENT_TYPE_JOB_LOST, common_pb2.EVENT_TYPE_JOB_RETRIED,
]
MAX_BATCH = 1000
MAX_GAMES_PER_JOB_SPLIT = 1000


def _job_id(request) -> str:
    check = Validator()
    check.check("job_id", bool(JOB_ID.match(request.job_id)), "is required")
    check.raise_if_invalid()
    return request.job_id


def _epoch(epoch: int) -> None:
    check = Validator()
    check.check("epoch", epoch > 0, "is required: this call is made on behalf of the leader")
    check.raise_if_invalid()


class JobServicer(jobs_pb2_grpc.JobServiceServicer):
    def __init__(self, lifecycle: JobLifecycle) -> None:
        self._jobs = lifecycle

    async def SubmitJob(self, request, context):
        ((job, created),) = await self._jobs.submit([(request.spec, request.idempotency_key)])
        return jobs_pb2.SubmitJobResponse(job=job, created=created)

    async def SubmitJobs(self, request, context):
        check = Validator()
        check.check("jobs", 1 <= len(request.jobs) <= MAX_BATCH, f"must hold 1 to {MAX_BATCH} jobs")
        check.raise_if_invalid()
        created = await self._jobs.submit([(j.spec, j.idempotency_key) for j in request.jobs])
        return jobs_pb2.SubmitJobsResponse(jobs=[job for job, _ in created])

    async def SpawnJob(self, request, context):
        _epoch(request.epoch)
        ((job, _),) = await self._jobs.submit([(request.spec, request.idempotency_key)], request.epoch)
        await self._jobs.dispatch(1000, request.epoch, only={job.job_id})
        return jobs_pb2.SpawnJobResponse(job=await self._jobs.store.get(job.job_id))

    async def CancelJob(self, request, context):
        return jobs_pb2.CancelJobResponse(job=await self._jobs.cancel(_job_id(request), request.reason))

    async def GetJob(self, request, context):
        return jobs_pb2.GetJobResponse(job=await self._jobs.store.get(_job_id(request)))

    async def ListJobs(self, request, context):
        job_filter = state_pb2.JobFilter(
            states=request.states, kind=request.kind, config_key=request.config_key, node_id=request.node_id
        )
        page = await self._jobs.store.list(job_filter, request.page.page_size, request.page.page_token)
        return jobs_pb2.ListJobsResponse(jobs=page.jobs, next_page_token=page.next_page_token)

    async def WatchJobs(self, request, context):
        async for item in self._jobs.store.watch(request.from_sequence, JOB_EVENTS):
            if request.job_id and item.event.subject != request.job_id:
                continue
            job = await self._jobs.store.get(item.event.subject)
            yield jobs_pb2.WatchJobsResponse(job=job, sequence=item.event.sequence)

    async def StreamJobLogs(self, request, context):
        job = await self._jobs.store.get(_job_id(request))
        attempt = request.attempt or job.attempt
        node_id = next((a.node_id for a in job.attempts if a.attempt == attempt), "")
        if not node_id:
            raise NotFound(f"job {job.job_id} attempt {attempt} has not been placed on a node")
        async for chunk in self._jobs.agents_logs(node_id, job.job_id, attempt, request.follow):
            yield jobs_pb2.StreamJobLogsResponse(stream=chunk.stream, data=chunk.data)

    async def ReportJobEvent(self, request, context):
        check = Validator()
        check.check("job_id", bool(JOB_ID.match(request.job_id)), "is required")
        check.check("attempt", request.attempt >= 1, "must be 1 or more")
        check.node_id("node_id", request.node_id)
        check.raise_if_invalid()
        return jobs_pb2.ReportJobEventResponse(applied=await self._jobs.report(request))

    async def DispatchPendingJobs(self, request, context):
        _epoch(request.epoch)
        dispatched, pending = await self._jobs.dispatch(request.limit or MAX_BATCH, request.epoch)
        return jobs_pb2.DispatchPendingJobsResponse(dispatched=dispatched, still_pending=pending)

    async def ReapJobs(self, request, context):
        _epoch(request.epoch)
        lost, timed_out, unverified = await self._jobs.reap(request.epoch)
        return jobs_pb2.ReapJobsResponse(lost=lost, timed_out=timed_out, unverified=unverified)

    async def RunDistributedSelfplay(self, request, context):
        check = Validator()
        check.config_key("config_key", request.config_key)
        check.check("games", 1 <= request.games <= 10_000_000, "must be between 1 and 10,000,000")
        check.check("max_jobs", request.max_jobs <= MAX_BATCH, f"must be at most {MAX_BATCH}")
        check.check("params", "games" not in request.params, "set the number of games with the games field")
        check.raise_if_invalid()
        runners = [n for n in self._jobs.members().values() if "selfplay" in n.job_kinds]
        count = max(1, min(request.max_jobs or len(runners) or 1, request.games))
        share, extra = divmod(request.games, count)
        specs = []
        for index in range(count):
            params = {**request.params, "games": str(share + (index < extra))}
            key = f"{request.idempotency_key}/{index}" if request.idempotency_key else ""
            specs.append((common_pb2.JobSpec(kind="selfplay", config_key=request.config_key, params=params), key))
        created = await self._jobs.submit(specs)
        return jobs_pb2.RunDistributedSelfplayResponse(jobs=[job for job, _ in created])

    async def _single(self, kind: str, role: int, request):
        check = Validator()
        check.config_key("config_key", request.config_key)
        if request.node_id:
            check.node_id("node_id", request.node_id)
        check.raise_if_invalid()
        requirements = common_pb2.ResourceRequirements(
            role=role, preferred_node_ids=[request.node_id] if request.node_id else []
        )
        spec = common_pb2.JobSpec(kind=kind, config_key=request.config_key, params=request.params, requirements=requirements)
        ((job, _),) = await self._jobs.submit([(spec, request.idempotency_key)])
        return job

    async def RunTraining(self, request, context):
        return jobs_pb2.RunTrainingResponse(job=await self._single("train", common_pb2.NODE_ROLE_TRAINING, request))

    async def ExportTrainingData(self, request, context):
        return jobs_pb2.ExportTrainingDataResponse(job=await self._single("export", common_pb2.NODE_ROLE_EXPORT, request))

    async def CleanupOldCompletedJobs(self, request, context):
        _epoch(request.epoch)
        older_than = request.older_than_seconds or int(self._jobs.retention_seconds)
        moved = await self._jobs.store.archive(older_than, request.epoch)
        return jobs_pb2.CleanupOldCompletedJobsResponse(moved=moved)
