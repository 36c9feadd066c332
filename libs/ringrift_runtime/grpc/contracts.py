"""Facts about the generated contracts that the runtime needs: every RingRift service
and method, and which methods are safe to retry."""

from __future__ import annotations

import importlib
from functools import lru_cache

from google.protobuf.descriptor import ServiceDescriptor

AREAS = ("common", "state", "nodes", "sync", "jobs", "selfplay", "training", "orchestrator", "agent")

# Process name -> fully qualified gRPC service it serves.
SERVICE_BY_PROCESS = {
    "state": "ringrift.state.v1.StateService",
    "nodes": "ringrift.nodes.v1.NodeSelectorService",
    "sync": "ringrift.sync.v1.SyncPlannerService",
    "jobs": "ringrift.jobs.v1.JobService",
    "selfplay": "ringrift.selfplay.v1.SelfplaySchedulerService",
    "training": "ringrift.training.v1.TrainingCoordinatorService",
    "gateway": "ringrift.orchestrator.v1.OrchestratorService",
    "agent": "ringrift.agent.v1.NodeAgentService",
}

# Read-only methods by name prefix: retrying them after UNAVAILABLE is always safe.
READ_ONLY_PREFIXES = (
    "Get", "List", "Load", "Explain", "Rank", "Filter", "Select", "Collect", "Pick", "Watch", "Stream", "Read",
)
# Mutations that are idempotent by contract (see the method comments in the protos).
IDEMPOTENT_MUTATIONS = frozenset(
    {
        "ringrift.state.v1.StateService/AdvanceEpoch",
        "ringrift.agent.v1.NodeAgentService/RunJob",
        "ringrift.agent.v1.NodeAgentService/CancelJob",
        "ringrift.agent.v1.NodeAgentService/OpenFileStream",
        "ringrift.jobs.v1.JobService/ReportJobEvent",
        "ringrift.jobs.v1.JobService/CancelJob",
    }
)


@lru_cache(maxsize=1)
def service_descriptors() -> dict[str, ServiceDescriptor]:
    """Every RingRift gRPC service descriptor by full name."""
    found: dict[str, ServiceDescriptor] = {}
    for area in AREAS:
        module = importlib.import_module(f"ringrift.{area}.v1.{area}_pb2")
        for service in module.DESCRIPTOR.services_by_name.values():
            found[service.full_name] = service
    return found


def is_idempotent(full_method: str) -> bool:
    """``full_method`` is "package.Service/Method"."""
    _, _, method = full_method.partition("/")
    return method.startswith(READ_ONLY_PREFIXES) or full_method in IDEMPOTENT_MUTATIONS


@lru_cache(maxsize=1)
def idempotent_methods() -> tuple[tuple[str, str], ...]:
    """(service, method) pairs that the channel retry policy covers."""
    pairs = []
    for service_name, service in sorted(service_descriptors().items()):
        for method in service.methods:
            if is_idempotent(f"{service_name}/{method.name}"):
                pairs.append((service_name, method.name))
    return tuple(pairs)



def generated_grpc_module(full_name: str):
    """The *_pb2_grpc module of a service, e.g. ringrift.state.v1.state_pb2_grpc."""
    package, _, _ = full_name.rpartition(".")
    area = package.split(".")[1]
    return importlib.import_module(f"{package}.{area}_pb2_grpc")
