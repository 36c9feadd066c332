"""Facts about the generated contracts that the runtime needs: every RingRift service
and method, and which methods are safe to retry (declared in the protos with
``option idempotency_level``; the channels' retry policy is derived from it)."""

from __future__ import annotations

import importlib
from functools import lru_cache

from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.descriptor_pb2 import MethodOptions

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


@lru_cache(maxsize=1)
def service_descriptors() -> dict[str, ServiceDescriptor]:
    """Every RingRift gRPC service descriptor by full name."""
    found: dict[str, ServiceDescriptor] = {}
    for area in AREAS:
        module = importlib.import_module(f"ringrift.{area}.v1.{area}_pb2")
        for service in module.DESCRIPTOR.services_by_name.values():
            found[service.full_name] = service
    return found


@lru_cache(maxsize=4096)  # asked on every served call (the access log, the gateway's audit)
def idempotency_level(full_method: str) -> str:
    """The method's ``option idempotency_level`` in its proto: NO_SIDE_EFFECTS (a read),
    IDEMPOTENT (a mutation that repeats safely), or IDEMPOTENCY_UNKNOWN."""
    service_name, _, method_name = full_method.partition("/")
    service = service_descriptors().get(service_name)
    method = service.methods_by_name.get(method_name) if service else None
    if method is None:
        return "IDEMPOTENCY_UNKNOWN"
    options = method.GetOptions()
    return MethodOptions.IdempotencyLevel.Name(options.idempotency_level)


def is_idempotent(full_method: str) -> bool:
    """``full_method`` is "package.Service/Method"; the contract says it may be retried."""
    return idempotency_level(full_method) in ("NO_SIDE_EFFECTS", "IDEMPOTENT")


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
