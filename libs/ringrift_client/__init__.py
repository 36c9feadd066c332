"""A Python client of a RingRift gateway (its own distribution: clients/python; it needs
only grpcio and protobuf).

    from ringrift_client import Client, JobSpec

    with Client.connect(config="ringrift-local/client.toml") as client:
        job = client.submit_job(spec=JobSpec(kind="echo", params={"message": "hi"})).job
        print(client.wait(job.job_id).state, b"".join(client.logs(job.job_id)).decode())

Client is blocking, AsyncClient the same over asyncio. Every gateway RPC is a method
(snake_case, typed); failures raise RingriftError subclasses (errors.py)."""

from ringrift.common.v1.common_pb2 import Event, EventType, Job, JobSpec, JobState, ResourceRequirements
from ringrift_client.client import AsyncClient, Client
from ringrift_client.config import ConfigError, Context, load_context
from ringrift_client.errors import (
    AlreadyExists,
    Cancelled,
    DeadlineExceeded,
    FailedPrecondition,
    FieldViolation,
    Internal,
    InvalidArgument,
    NotFound,
    OutOfRange,
    PermissionDenied,
    ResourceExhausted,
    RingriftError,
    Unauthenticated,
    Unavailable,
    Unimplemented,
)

__all__ = [
    "AlreadyExists",
    "AsyncClient",
    "Cancelled",
    "Client",
    "ConfigError",
    "Context",
    "DeadlineExceeded",
    "Event",
    "EventType",
    "FailedPrecondition",
    "FieldViolation",
    "Internal",
    "InvalidArgument",
    "Job",
    "JobSpec",
    "JobState",
    "NotFound",
    "OutOfRange",
    "PermissionDenied",
    "ResourceExhausted",
    "ResourceRequirements",
    "RingriftError",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "load_context",
]
