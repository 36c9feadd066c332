"""SelfplayScheduler over real gRPC with StateService and agents declaring different
hardware: targets per node, replayable picks, explanations, and evaluation outcomes
kept in StateService (a restarted scheduler remembers them)."""

from __future__ import annotations

import grpc
import pytest

from ringrift.selfplay.v1 import selfplay_pb2 as S
from ringrift.selfplay.v1 import selfplay_pb2_grpc
from ringrift_runtime.grpc.status import field_violations
from tests.integration.cluster.conftest import LocalCluster
from tests.integration.cluster.test_jobs_end_to_end import A100, CPU, RTX4090
from tests.polling import until

DEMO = {
    "RINGRIFT_PIPELINE__PROFILE": "demo",
    "RINGRIFT_PIPELINE__CONFIGS": '["square6_2p", "square8_2p", "square8_3p"]',
}


def _adjusted(base: int, adjustments) -> int:
    """The declared hardware's base target after the live-load adjustments the answer lists
    (this machine's real CPU and disk load: idle +2, busy CPU -1, a full disk caps at 4)."""
    jobs = base
    for note in adjustments:
        if note.startswith("cpu>90%"):
            jobs = max(2, jobs - 1)
        elif note.startswith("idle"):
            jobs += 2
        elif note.startswith("disk>=70%"):
            jobs = min(jobs, 4)
        elif note.startswith("memory>=75%"):
            jobs = min(jobs, 2)
        else:
            raise AssertionError(f"unexpected adjustment {note!r}")
    return jobs


async def _members(stub, *node_ids: str) -> bool:
    """Whether the scheduler answers for every one of ``node_ids`` (NOT_FOUND: not yet)."""
    for node_id in node_ids:
        try:
            await stub.GetTargetJobsForNode(S.GetTargetJobsForNodeRequest(node_id=node_id), timeout=10)
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.NOT_FOUND:
                raise
            return False
    return True


async def test_scheduler_answers_from_membership_and_state(cluster: LocalCluster):
    await cluster.start_state()
    scheduler = await cluster.start("selfplay", "selfplay", **DEMO)
    await cluster.start("gateway", "gw")
    await cluster.start_agent(
        "gpu-a100", RINGRIFT_AGENT__CPU_CORES="64", RINGRIFT_AGENT__RAM_MB=str(512 * 1024), **A100
    )
    await cluster.start_agent(
        "gpu-4090", RINGRIFT_AGENT__CPU_CORES="32", RINGRIFT_AGENT__RAM_MB=str(128 * 1024), **RTX4090
    )
    await cluster.start_agent("cpu-only", RINGRIFT_AGENT__CPU_CORES="32", RINGRIFT_AGENT__RAM_MB=str(64 * 1024), **CPU)
    epoch = (await cluster.wait_for_leader()).epoch
    channel = cluster.channel(scheduler)
    stub = selfplay_pb2_grpc.SelfplaySchedulerServiceStub(channel)
    # The scheduler learns of members through its etcd watch, a moment after they register.
    await until("the scheduler sees the three agents", lambda: _members(stub, "gpu-a100", "gpu-4090", "cpu-only"))

    a100 = await stub.GetTargetJobsForNode(S.GetTargetJobsForNodeRequest(node_id="gpu-a100"), timeout=10)
    assert a100.tier == "a100" and a100.target_jobs == _adjusted(16, a100.adjustments), a100
    cpu = await stub.GetTargetJobsForNode(S.GetTargetJobsForNodeRequest(node_id="cpu-only"), timeout=10)
    assert cpu.tier == "cpu" and cpu.target_jobs == _adjusted(9, cpu.adjustments), cpu
    # A hybrid node's GPU jobs are its target, whatever this machine's load adjusted it to
    # (the load is sampled again between two calls: asked until both saw the same).
    for _ in range(5):
        hybrid = await stub.GetHybridJobTargets(S.GetHybridJobTargetsRequest(node_id="gpu-4090"), timeout=10)
        target = await stub.GetTargetJobsForNode(S.GetTargetJobsForNodeRequest(node_id="gpu-4090"), timeout=10)
        if hybrid.gpu_jobs == target.target_jobs:
            break
    assert hybrid.gpu_jobs == target.target_jobs >= 2 and hybrid.cpu_only_jobs >= 1, (hybrid, target)

    first = await stub.PickWeightedSelfplayConfig(S.PickWeightedSelfplayConfigRequest(node_id="cpu-only"), timeout=10)
    assert first.config_key in DEMO["RINGRIFT_PIPELINE__CONFIGS"] and first.seed > 0
    again = await stub.PickWeightedSelfplayConfig(
        S.PickWeightedSelfplayConfigRequest(node_id="cpu-only", seed=first.seed), timeout=10
    )
    assert again.config_key == first.config_key
    assert all(t.starvation_floor for t in first.terms)  # nothing played yet: all below the floor
    explained = await stub.ExplainAllocation(S.ExplainAllocationRequest(), timeout=10)
    assert {t.config_key for t in explained.terms} == {"square6_2p", "square8_2p", "square8_3p"}
    assert sum(t.probability for t in explained.terms) == pytest.approx(1.0)
    assert all(t.bootstrap_boost == 100 for t in explained.terms)

    outcome = S.RecordEvaluationOutcomeRequest(
        config_key="square8_2p", win_rate=0.2, promoted=False, job_id="g-1", epoch=epoch
    )
    recorded = await stub.RecordEvaluationOutcome(outcome, timeout=10)
    assert recorded.curriculum_weight == pytest.approx(1.3) and recorded.recent_promotion_failures == 1
    repeated = await stub.RecordEvaluationOutcome(outcome, timeout=10)  # same job: recorded once
    assert repeated.recent_promotion_failures == 1

    await cluster.restart(scheduler)
    stub = selfplay_pb2_grpc.SelfplaySchedulerServiceStub(cluster.channel(scheduler))
    terms = {t.config_key: t for t in (await stub.ExplainAllocation(S.ExplainAllocationRequest(), timeout=10)).terms}
    assert terms["square8_2p"].promotion_penalty_factor == 0.7 and terms["square8_2p"].curriculum_boost == 1

    for request, call, field in [
        (S.GetTargetJobsForNodeRequest(node_id="Bad Node"), stub.GetTargetJobsForNode, "node_id"),
        (S.GetEloBasedPriorityBoostRequest(config_key="square8"), stub.GetEloBasedPriorityBoost, "config_key"),
        (
            S.RecordEvaluationOutcomeRequest(config_key="square8_2p", win_rate=1.5, job_id="x", epoch=epoch),
            stub.RecordEvaluationOutcome,
            "win_rate",
        ),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await call(request, timeout=10)
        assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT and field in field_violations(failed.value)
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await stub.GetTargetJobsForNode(S.GetTargetJobsForNodeRequest(node_id="no-such-node"), timeout=10)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
