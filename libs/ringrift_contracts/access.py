"""Who may call what: every RPC of every service and the identities allowed to call it
(ARCHITECTURE.md §9). One table; the runtime's server interceptor enforces it, and a test
walks every method of every service against it (a method with no entry is refused).

A principal is ``service:<name>``, ``gateway`` (any replica), ``agent`` (any node: what a
node may do with a call is checked again by the service, e.g. an agent reports only
attempts placed on itself), ``user:<role>`` (a role includes the weaker ones), ``any``
(any identity of the cluster) or ``open`` (no identity needed: health, and JoinCluster,
whose credential is the one-time join token it carries)."""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Set as AbstractSet

from ringrift_runtime.security.identity import Identity, Kind, Role

SERVICES = ("state", "nodes", "sync", "jobs", "selfplay", "training")
ROLE_ORDER = (Role.VIEWER, Role.OPERATOR, Role.ADMIN)

GATEWAY = "gateway"
AGENT = "agent"
ANY = "any"
OPEN = "open"


def svc(*names: str) -> frozenset[str]:
    return frozenset(f"service:{name}" for name in names)


def user(role: Role) -> frozenset[str]:
    return frozenset({f"user:{role.value}"})


CONTROL_PLANE = svc(*SERVICES) | {GATEWAY}
VIEWER, OPERATOR, ADMIN = user(Role.VIEWER), user(Role.OPERATOR), user(Role.ADMIN)


def _service(name: str, rules: dict[str, AbstractSet[str]]) -> dict[str, frozenset[str]]:
    return {f"{name}/{method}": frozenset(allowed) for method, allowed in rules.items()}


STATE_READS = (
    "GetClusterStats", "GetClusterEpoch", "LoadState", "GetJob", "ListJobs", "CountJobsOnNodes", "ListNodesSeen",
    "ListModels", "GetBestModels", "ListMatches", "ListRatings", "ListConfigStats", "ListSyncTransfers", "ListEvents",
    "WatchEvents", "GetEventHead",
)  # fmt: skip

TABLE: dict[str, frozenset[str]] = {
    # StateService: reads for the control plane; each kind of data written by its owner.
    **_service(
        "ringrift.state.v1.StateService",
        {
            **{method: CONTROL_PLANE for method in STATE_READS},
            "GetClusterEpoch": CONTROL_PLANE | {AGENT},  # an agent checks an epoch it has not seen before
            "AdvanceEpoch": set(),  # kept for compatibility; epochs come from ClaimEpoch
            "ClaimEpoch": {GATEWAY},
            "PersistState": {GATEWAY} | svc("nodes"),
            "CreateJobs": svc("jobs"),
            "TransitionJobs": svc("jobs"),
            "ArchiveJobs": svc("jobs"),
            "RecordNodes": {GATEWAY},
            "RegisterModel": svc("training"),
            "SetModelStatus": svc("training"),
            "PutRatings": svc("training"),
            "RecordMatches": {GATEWAY} | svc("training"),
            "UpdateConfigStats": {GATEWAY} | svc("training"),
            "RecordSyncTransfers": svc("sync"),
            # Agents: only RECORD_SKIPPED (a malformed file they passed over); StateService checks the type.
            "PublishEvent": {GATEWAY, AGENT} | svc("training", "sync", "selfplay", "nodes"),
        },
    ),
    # JobService: the gateway (users' jobs, the leader's rounds) and training submit and
    # read; agents report only (on attempts placed on themselves).
    **_service(
        "ringrift.jobs.v1.JobService",
        {
            **{m: {GATEWAY} | svc("training") for m in ("SubmitJob", "SubmitJobs", "CancelJob", "GetJob", "ListJobs")},
            **{m: {GATEWAY} | svc("training") for m in ("RunDistributedSelfplay", "RunTraining", "ExportTrainingData")},
            "WatchJobs": {GATEWAY} | svc("training"),
            "StreamJobLogs": {GATEWAY},
            **{m: {GATEWAY} for m in ("SpawnJob", "DispatchPendingJobs", "ReapJobs", "CleanupOldCompletedJobs")},
            "ReportJobEvent": {AGENT},
        },
    ),
    **_service(
        "ringrift.nodes.v1.NodeSelectorService",
        {
            **{
                m: {GATEWAY} | svc("jobs", "sync", "training")
                for m in ("SelectBestNodeForJob", "RankNodes", "GetNodeScore", "FilterByCapability", "ListNodes")
            },
            "ExplainPlacement": {GATEWAY},
            "ReserveNode": {GATEWAY} | svc("training"),
            "ReleaseNode": {GATEWAY} | svc("training"),
            # Training quarantines a node whose games keep failing their checks; an
            # operator (through the gateway) quarantines and lifts.
            "QuarantineNode": {GATEWAY} | svc("training"),
            "LiftQuarantine": {GATEWAY},
        },
    ),
    **_service(
        "ringrift.sync.v1.SyncPlannerService",
        {
            m: {GATEWAY} | svc("training")
            for m in ("CollectManifests", "CreateSyncPlan", "ExecuteSyncPlan", "GetSyncPlan", "GetSyncTargets")
        },
    ),
    **_service(
        "ringrift.selfplay.v1.SelfplaySchedulerService",
        {
            m: {GATEWAY} | svc("training")
            for m in (
                "PickWeightedSelfplayConfig",
                "GetEloBasedPriorityBoost",
                "GetTargetJobsForNode",
                "GetHybridJobTargets",
                "ExplainAllocation",
                "RecordEvaluationOutcome",
            )
        },
    ),
    **_service(
        "ringrift.training.v1.TrainingCoordinatorService",
        {
            m: {GATEWAY}
            for m in (
                "GetTrainingReadiness",
                "TriggerTraining",
                "DispatchTrainingJob",
                "HandleTrainingJobCompletion",
                "RunPostTrainingGauntlet",
                "ListTrainingRuns",
                "FitRatings",
                "RollbackModel",
            )
        },
    ),
    # The agents: jobs only from JobService (the leader's path, fenced by epoch), files
    # only between agents and for the sync service.
    **_service(
        "ringrift.agent.v1.NodeAgentService",
        {
            "RunJob": svc("jobs"),
            "CancelJob": svc("jobs"),
            **{m: svc("jobs") | {GATEWAY} for m in ("GetJobStatus", "ListJobs", "StreamJobLogs", "ListJobTemplates")},
            "GetNodeInfo": svc("jobs", "sync") | {GATEWAY},
            "GetManifest": svc("sync", "training") | {GATEWAY},
            "ReadFile": svc("sync") | {AGENT},
            "OpenFileStream": svc("sync") | {AGENT},
            "PullFile": svc("sync"),
        },
    ),
    # The gateway's facade: users by role; the gateway replicas among themselves.
    **_service(
        "ringrift.orchestrator.v1.OrchestratorService",
        {
            **{
                m: VIEWER | {GATEWAY}
                for m in (
                    "GetClusterStatus",
                    "ListNodes",
                    "GetJob",
                    "ListJobs",
                    "StreamJobLogs",
                    "WatchEvents",
                    "ListModels",
                    "ListRatings",
                    "GetSyncStatus",
                    "ListLoops",
                    "ExplainPlacement",
                    "ExplainAllocation",
                )
            },
            **{
                m: OPERATOR
                for m in (
                    "SubmitJob",
                    "SubmitJobs",
                    "CancelJob",
                    "TriggerTraining",
                    "RollbackModel",
                    "PauseLoop",
                    "ResumeLoop",
                    "QuarantineNode",
                    "LiftQuarantine",
                )
            },
            # A joining node has no identity yet: its one-time join token is the credential.
            "JoinCluster": {OPEN},
            "RenewCertificate": {AGENT},
        },
    ),
    # Health is open; reflection is for any identity of the cluster.
    "grpc.health.v1.Health/Check": frozenset({OPEN}),
    "grpc.health.v1.Health/Watch": frozenset({OPEN}),
    "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": frozenset({ANY}),
    "grpc.reflection.v1.ServerReflection/ServerReflectionInfo": frozenset({ANY}),
}


def principals(identity: Identity) -> set[str]:
    """What an identity counts as in the table."""
    if identity.kind is Kind.SERVICE:
        return {f"service:{identity.name}", ANY}
    if identity.kind is Kind.GATEWAY:
        return {GATEWAY, ANY}
    if identity.kind is Kind.AGENT:
        return {AGENT, ANY}
    assert identity.role is not None
    held = ROLE_ORDER[: ROLE_ORDER.index(identity.role) + 1]  # a role includes the weaker ones
    return {f"user:{role.value}" for role in held} | {ANY}


def allowed(method: str, identity: Identity | None) -> bool:
    """``method`` is "/package.Service/Method" or "package.Service/Method"."""
    rule = TABLE.get(method.lstrip("/"))
    if rule is None:
        return False
    if OPEN in rule:
        return True
    return identity is not None and bool(principals(identity) & rule)


def needs_identity(method: str) -> bool:
    return OPEN not in TABLE.get(method.lstrip("/"), frozenset())


def methods() -> Iterable[str]:
    return TABLE.keys()
