"""JobService's messages <-> its domain values."""

from __future__ import annotations

from ringrift.common.v1 import common_pb2
from ringrift.state.v1 import state_pb2
from ringrift_contracts.jobs import JobState
from ringrift_contracts.nodes import gpu_count
from ringrift_jobs.domain.model import AttemptView, Job, Node, Outcome, Spec, Transition
from ringrift_runtime.grpc.times import from_timestamp, to_timestamp


def spec(message: common_pb2.JobSpec) -> Spec:
    placed = message
    if message.traceparent:  # jobs of different traces still place alike
        placed = common_pb2.JobSpec()
        placed.CopyFrom(message)
        placed.ClearField("traceparent")
    return Spec(
        kind=message.kind,
        config_key=message.config_key,
        params=dict(message.params),
        timeout_seconds=message.timeout_seconds,
        max_attempts=message.max_attempts,
        top_up=message.top_up,
        needs_gpu=message.requirements.needs_gpu,
        traceparent=message.traceparent,
        group=placed.SerializeToString(deterministic=True),
        wire=message,
    )


def spec_message(value: Spec) -> common_pb2.JobSpec:
    if value.wire is not None:
        return value.wire
    return common_pb2.JobSpec(
        kind=value.kind,
        config_key=value.config_key,
        params=dict(value.params),
        timeout_seconds=int(value.timeout_seconds),
        max_attempts=value.max_attempts,
        top_up=value.top_up,
        requirements=common_pb2.ResourceRequirements(needs_gpu=value.needs_gpu),
        traceparent=value.traceparent,
    )


def job(message: common_pb2.Job) -> Job:
    return Job(
        job_id=message.job_id,
        attempt=message.attempt,
        state=JobState(message.state),
        node_id=message.node_id,
        spec=spec(message.spec),
        updated_at=from_timestamp(message.updated_at),
        attempts=tuple(AttemptView(a.attempt, a.node_id, from_timestamp(a.started_at)) for a in message.attempts),
        wire=message,
    )


def transition_message(value: Transition) -> state_pb2.JobTransition:
    message = state_pb2.JobTransition(
        job_id=value.job_id,
        attempt=value.attempt,
        to_state=int(value.to_state),
        from_state=int(value.from_state) if value.from_state is not None else 0,
        node_id=value.node_id,
        exit_code=value.exit_code,
        error=value.error,
        result_json=value.result_json,
        retry=value.retry,
        permanent=value.permanent,
        reported_by=value.reported_by,
        cpu_seconds=value.cpu_seconds,
    )
    if value.not_before is not None:
        message.not_before.CopyFrom(to_timestamp(value.not_before))
    return message


def outcome(message: state_pb2.TransitionOutcome) -> Outcome:
    return Outcome(
        message.job_id, message.applied, message.reason, job(message.job) if message.HasField("job") else None
    )


def node(message: common_pb2.NodeInfo) -> Node:
    return Node(
        node_id=message.node_id,
        address=message.address,
        job_kinds=frozenset(message.job_kinds),
        job_slots=message.job_slots,
        gpu_count=gpu_count(message),
    )
