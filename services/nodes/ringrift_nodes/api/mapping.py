"""NodeSelectorService proto <-> domain mapping, with request validation."""

from __future__ import annotations

import re

from ringrift.common.v1 import common_pb2
from ringrift.nodes.v1 import nodes_pb2
from ringrift_contracts.check import Check
from ringrift_contracts.tables import ROLES
from ringrift_nodes.domain.model import JobNeeds, Rejection, Score
from ringrift_runtime.grpc.times import to_timestamp

KIND_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
MAX_LABELS = 32
MAX_NODE_LIST = 1000

REJECTION_CODES = {
    Rejection.NONE: nodes_pb2.REJECTION_REASON_UNSPECIFIED,
    Rejection.NOT_MEMBER: nodes_pb2.REJECTION_REASON_NOT_MEMBER,
    Rejection.DRAINING: nodes_pb2.REJECTION_REASON_DRAINING,
    Rejection.QUARANTINED: nodes_pb2.REJECTION_REASON_QUARANTINED,
    Rejection.RESERVED: nodes_pb2.REJECTION_REASON_RESERVED,
    Rejection.DISK_FULL: nodes_pb2.REJECTION_REASON_DISK_FULL,
    Rejection.MEMORY_PRESSURE: nodes_pb2.REJECTION_REASON_MEMORY_PRESSURE,
    Rejection.MISSING_ROLE: nodes_pb2.REJECTION_REASON_MISSING_ROLE,
    Rejection.NO_GPU: nodes_pb2.REJECTION_REASON_NO_GPU,
    Rejection.INSUFFICIENT_GPU_MEMORY: nodes_pb2.REJECTION_REASON_INSUFFICIENT_GPU_MEMORY,
    Rejection.INSUFFICIENT_RAM: nodes_pb2.REJECTION_REASON_INSUFFICIENT_RAM,
    Rejection.LABEL_MISMATCH: nodes_pb2.REJECTION_REASON_LABEL_MISMATCH,
    Rejection.WEAK_GPU: nodes_pb2.REJECTION_REASON_WEAK_GPU,
    Rejection.UNSUPPORTED_KIND: nodes_pb2.REJECTION_REASON_UNSUPPORTED_KIND,
    Rejection.NOT_REQUESTED: nodes_pb2.REJECTION_REASON_NOT_REQUESTED,
}


def _requirements(check: Check, field: str, kind: str, req: common_pb2.ResourceRequirements, params) -> JobNeeds:
    check.check(f"{field}.role", ROLES.known(req.role) or req.role == common_pb2.NODE_ROLE_UNSPECIFIED, "unknown role")
    check.check(f"{field}.labels", len(req.labels) <= MAX_LABELS, f"at most {MAX_LABELS} labels")
    check.check(
        f"{field}.preferred_node_ids", len(req.preferred_node_ids) <= MAX_NODE_LIST, f"at most {MAX_NODE_LIST} nodes"
    )
    for index, node_id in enumerate(req.preferred_node_ids):
        check.node_id(f"{field}.preferred_node_ids[{index}]", node_id)
    check.check(
        f"{field}.required_node_ids", len(req.required_node_ids) <= MAX_NODE_LIST, f"at most {MAX_NODE_LIST} nodes"
    )
    for index, node_id in enumerate(req.required_node_ids):
        check.node_id(f"{field}.required_node_ids[{index}]", node_id)
    return JobNeeds(
        kind=kind,
        needs_gpu=req.needs_gpu,
        min_gpu_memory_mb=req.min_gpu_memory_mb,
        min_free_ram_mb=req.min_free_ram_mb,
        role=ROLES.names.get(req.role),
        labels=dict(req.labels),
        preferred_nodes=frozenset(req.preferred_node_ids),
        required_nodes=frozenset(req.required_node_ids),
        gpu_tree_search=req.gpu_tree_search,
        engine=params.get("engine", "") if params is not None else "",
    )


def job_needs(check: Check, field: str, spec: common_pb2.JobSpec) -> JobNeeds:
    check.check(
        f"{field}.kind",
        bool(KIND_PATTERN.match(spec.kind)),
        "is required: a job kind such as 'selfplay' (lower-case letters, digits, '-', '_')",
    )
    check.config_key(f"{field}.config_key", spec.config_key, required=False)
    return _requirements(check, f"{field}.requirements", spec.kind, spec.requirements, spec.params)


def node_list(check: Check, field: str, node_ids) -> frozenset[str]:
    """Node ids of a request: any number (a cluster may have more full nodes than a page
    holds; the message size bounds it), each checked."""
    for index, node_id in enumerate(node_ids):
        check.node_id(f"{field}[{index}]", node_id)
    return frozenset(node_ids)


def select_request(request) -> tuple[JobNeeds, frozenset[str]]:
    check = Check()
    needs = job_needs(check, "spec", request.spec)
    exclude = node_list(check, "exclude_node_ids", request.exclude_node_ids)
    check.raise_if_invalid()
    return needs, exclude


def rank_request(request, max_top_k: int) -> tuple[JobNeeds, int, frozenset[str], frozenset[str] | None]:
    check = Check()
    needs = job_needs(check, "spec", request.spec)
    check.check("top_k", 1 <= request.top_k <= max_top_k, f"must be between 1 and {max_top_k}")
    exclude = node_list(check, "exclude_node_ids", request.exclude_node_ids)
    only = node_list(check, "only_node_ids", request.only_node_ids) or None
    check.raise_if_invalid()
    return needs, request.top_k, exclude, only


def score_request(request) -> tuple[str, JobNeeds]:
    check = Check()
    check.node_id("node_id", request.node_id)
    needs = job_needs(check, "spec", request.spec)
    check.raise_if_invalid()
    return request.node_id, needs


def filter_request(request) -> JobNeeds:
    check = Check()
    check.check("kind", bool(KIND_PATTERN.match(request.kind)), "is required: a job kind such as 'selfplay'")
    needs = _requirements(check, "requirements", request.kind, request.requirements, None)
    check.raise_if_invalid()
    return needs


def explain_request(request) -> JobNeeds:
    check = Check()
    needs = job_needs(check, "spec", request.spec)
    check.raise_if_invalid()
    return needs


def score_message(score: Score) -> nodes_pb2.NodeScore:
    return nodes_pb2.NodeScore(
        node_id=score.node_id,
        usable=score.usable,
        rejection_reason=REJECTION_CODES[score.rejection],
        rejection_detail=score.detail,
        gpu_power=score.gpu_power,
        cpu_power=score.cpu_power,
        load_score=score.load,
        locality_bonus=score.locality_bonus,
        measured_throughput=score.measured_throughput,
        effective_power=score.effective_power,
        rank=score.rank,
    )


ROLE_PURPOSES = ("selfplay", "training", "gauntlet", "export")


def reserve_request(request, max_seconds: int) -> tuple[str, str, str, float]:
    check = Check()
    check.node_id("node_id", request.node_id)
    check.check("purpose", request.purpose in ROLE_PURPOSES, f"must be one of {', '.join(ROLE_PURPOSES)}")
    check.require("holder", request.holder, "is required (who holds the reservation, e.g. a job id)")
    check.max_length("holder", request.holder, 128)
    check.check("ttl_seconds", 1 <= request.ttl_seconds <= max_seconds, f"must be between 1 and {max_seconds}")
    check.leader_epoch("epoch", request.epoch)
    check.raise_if_invalid()
    return request.node_id, request.purpose, request.holder, float(request.ttl_seconds)


def release_request(request) -> tuple[str, str]:
    check = Check()
    check.node_id("node_id", request.node_id)
    check.require("holder", request.holder)
    check.leader_epoch("epoch", request.epoch)
    check.raise_if_invalid()
    return request.node_id, request.holder


def quarantine_request(request, default_seconds: int, max_seconds: int) -> tuple[str, str, int]:
    check = Check()
    check.node_id("node_id", request.node_id)
    check.require("reason", request.reason.strip(), "is required (why the node takes no work)")
    check.max_length("reason", request.reason, 500)
    seconds = request.duration_seconds or default_seconds
    check.check("duration_seconds", 60 <= seconds <= max_seconds, f"must be between 60 and {max_seconds} (0: default)")
    check.raise_if_invalid()
    return request.node_id, request.reason.strip(), seconds


def lift_request(request) -> str:
    check = Check()
    check.node_id("node_id", request.node_id)
    check.raise_if_invalid()
    return request.node_id


def reservation_message(reservation) -> nodes_pb2.Reservation:
    return nodes_pb2.Reservation(
        node_id=reservation.node_id,
        purpose=reservation.purpose,
        holder=reservation.holder,
        expires_at=to_timestamp(reservation.expires_at),
    )
