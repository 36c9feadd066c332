"""StateService jobs: proto <-> domain mapping and validation."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from ringrift.common.v1 import common_pb2
from ringrift.state.v1 import state_pb2
from ringrift_contracts.check import Check
from ringrift_contracts.limits import MAX_BATCH
from ringrift_runtime.grpc.times import from_timestamp
from ringrift_state.api.mapping import timestamp
from ringrift_state.domain.jobs import JobQuery, JobRecord, JobState, NewJob, Transition

KNOWN_STATES = frozenset(int(s) for s in JobState)


def new_jobs(request: state_pb2.CreateJobsRequest, default_max_attempts: int) -> list[NewJob]:
    check = Check()
    check.batch("jobs", len(request.jobs))
    result = []
    for index, new in enumerate(request.jobs[:MAX_BATCH]):
        field = f"jobs[{index}]"
        spec = new.spec
        check.kind(f"{field}.spec.kind", spec.kind)
        check.config_key(f"{field}.spec.config_key", spec.config_key, required=False)
        check.max_length(f"{field}.idempotency_key", new.idempotency_key, 128)
        result.append(
            NewJob(
                kind=spec.kind,
                config_key=spec.config_key,
                spec=spec.SerializeToString(),
                priority=spec.priority,
                max_attempts=spec.max_attempts or default_max_attempts,
                idempotency_key=new.idempotency_key,
                needs_gpu=spec.requirements.needs_gpu,
            )
        )
    check.raise_if_invalid()
    return result


def job_id(request) -> str:
    check = Check()
    check.job_id("job_id", request.job_id)
    check.raise_if_invalid()
    return request.job_id


def list_query(request: state_pb2.ListJobsRequest) -> tuple[JobQuery, int, str]:
    check = Check()
    for index, state in enumerate(request.filter.states):
        check.check(f"filter.states[{index}]", state in KNOWN_STATES, "unknown job state")
    check.config_key("filter.config_key", request.filter.config_key, required=False)
    size = check.page("page", request.page.page_size, request.page.page_token)
    token = request.page.page_token
    check.raise_if_invalid()
    dispatchable = request.filter.dispatchable
    states = frozenset({JobState.PENDING}) if dispatchable else frozenset(JobState(s) for s in request.filter.states)
    query = JobQuery(
        states=states,
        kind=request.filter.kind,
        config_key=request.filter.config_key,
        node_id=request.filter.node_id,
        ready_before=datetime.now(UTC) if dispatchable else None,
        oldest_first=dispatchable,
    )
    return query, size, token


def transitions(request: state_pb2.TransitionJobsRequest) -> list[Transition]:
    check = Check()
    check.batch("transitions", len(request.transitions))
    result = []
    for index, t in enumerate(request.transitions[:MAX_BATCH]):
        field = f"transitions[{index}]"
        check.job_id(f"{field}.job_id", t.job_id)
        check.check(f"{field}.attempt", t.attempt >= 1, "must be 1 or more")
        check.check(
            f"{field}.to_state",
            t.to_state in KNOWN_STATES and t.to_state != JobState.PENDING,
            "must be a job state other than UNSPECIFIED and PENDING",
        )
        check.check(f"{field}.from_state", t.from_state == 0 or t.from_state in KNOWN_STATES, "unknown job state")
        check.check(f"{field}.result_json", len(t.result_json) <= 1024 * 1024, "must be at most 1 MiB")
        check.check(f"{field}.cpu_seconds", math.isfinite(t.cpu_seconds) and t.cpu_seconds >= 0, "must be 0 or more")
        if t.to_state not in KNOWN_STATES or (t.from_state and t.from_state not in KNOWN_STATES):
            continue  # reported above
        result.append(
            Transition(
                job_id=t.job_id,
                attempt=t.attempt,
                to_state=JobState(t.to_state),
                from_state=JobState(t.from_state) if t.from_state else None,
                node_id=t.node_id,
                exit_code=t.exit_code,
                error=t.error,
                result_json=t.result_json,
                retry=t.retry,
                not_before=from_timestamp(t.not_before),
                permanent=t.permanent,
                reported_by=t.reported_by,
                cpu_seconds=t.cpu_seconds,
            )
        )
    check.raise_if_invalid()
    return result


def job_message(job: JobRecord) -> common_pb2.Job:
    return common_pb2.Job(
        job_id=job.job_id,
        spec=common_pb2.JobSpec.FromString(job.spec),
        state=int(job.state),
        attempt=job.attempt,
        node_id=job.node_id,
        idempotency_key=job.idempotency_key,
        created_at=timestamp(job.created_at),
        updated_at=timestamp(job.updated_at),
        error=job.error,
        permanent=job.permanent,
        result_json=job.result_json,
        not_before=timestamp(job.not_before),
        attempts=[
            common_pb2.JobAttempt(
                attempt=a.attempt,
                node_id=a.node_id,
                state=int(a.state),
                created_at=timestamp(a.created_at),
                started_at=timestamp(a.started_at),
                finished_at=timestamp(a.finished_at),
                exit_code=a.exit_code,
                error=a.error,
                cpu_seconds=a.cpu_seconds,
            )
            for a in job.attempts
        ],
    )
