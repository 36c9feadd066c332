"""SelfplaySchedulerService servicer: decode -> Scheduler -> encode."""

from __future__ import annotations

import math

from ringrift.selfplay.v1 import selfplay_pb2, selfplay_pb2_grpc
from ringrift_contracts.check import Check
from ringrift_selfplay.domain.priority import Terms
from ringrift_selfplay.domain.service import Scheduler


def terms_message(t: Terms) -> selfplay_pb2.PriorityTerms:
    return selfplay_pb2.PriorityTerms(
        config_key=t.config_key,
        base=t.base,
        elo_boost=t.elo_boost,
        curriculum_boost=t.curriculum_boost,
        data_starvation_boost=t.data_starvation_boost,
        bootstrap_boost=t.bootstrap_boost,
        elo_gap_factor=t.elo_gap_factor,
        plateau=t.plateau,
        promotion_penalty_factor=t.promotion_penalty_factor,
        diversity_bonus=t.diversity_bonus,
        effective_priority=t.effective_priority,
        probability=t.probability,
        games_total=t.games_total,
        starvation_floor=t.starvation_floor,
        excluded_reason=t.excluded_reason,
        cpu_seconds_per_game=t.cpu_seconds_per_game,
        expected_gain_elo=t.expected_gain_elo,
        cost_factor=t.cost_factor,
    )


def _node(request, required: bool) -> str:
    check = Check()
    if required or request.node_id:
        check.node_id("node_id", request.node_id)
    check.raise_if_invalid()
    return request.node_id


class SelfplaySchedulerServicer(selfplay_pb2_grpc.SelfplaySchedulerServiceServicer):
    def __init__(self, scheduler: Scheduler) -> None:
        self._scheduler = scheduler

    async def PickWeightedSelfplayConfig(self, request, context):
        chosen = await self._scheduler.pick(_node(request, required=False), request.seed)
        return selfplay_pb2.PickWeightedSelfplayConfigResponse(
            config_key=chosen.config_key, seed=chosen.seed, terms=[terms_message(t) for t in chosen.terms]
        )

    async def GetEloBasedPriorityBoost(self, request, context):
        check = Check()
        check.config_key("config_key", request.config_key)
        check.raise_if_invalid()
        boost, best = await self._scheduler.elo_boost(request.config_key)
        return selfplay_pb2.GetEloBasedPriorityBoostResponse(boost=boost, best_elo=best or 0.0)

    async def GetTargetJobsForNode(self, request, context):
        target = self._scheduler.target(_node(request, required=True))
        return selfplay_pb2.GetTargetJobsForNodeResponse(
            target_jobs=target.jobs, tier=target.tier, adjustments=target.adjustments
        )

    async def GetHybridJobTargets(self, request, context):
        gpu_jobs, cpu_only = self._scheduler.hybrid(_node(request, required=True))
        return selfplay_pb2.GetHybridJobTargetsResponse(gpu_jobs=gpu_jobs, cpu_only_jobs=cpu_only)

    async def ExplainAllocation(self, request, context):
        terms = await self._scheduler.explain(_node(request, required=False))
        return selfplay_pb2.ExplainAllocationResponse(terms=[terms_message(t) for t in terms])

    async def RecordEvaluationOutcome(self, request, context):
        check = Check()
        check.config_key("config_key", request.config_key)
        check.check(
            "win_rate", math.isfinite(request.win_rate) and 0 <= request.win_rate <= 1, "must be between 0 and 1"
        )
        check.check("job_id", 0 < len(request.job_id) <= 128, "is required (the evaluation job id, for idempotency)")
        check.leader_epoch("epoch", request.epoch)
        check.raise_if_invalid()
        weight, failures = await self._scheduler.record_outcome(
            request.config_key, request.win_rate, request.promoted, request.job_id, request.epoch
        )
        return selfplay_pb2.RecordEvaluationOutcomeResponse(
            curriculum_weight=weight, recent_promotion_failures=failures
        )
