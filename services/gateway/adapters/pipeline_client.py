"""The leader's clients for the background loops: SelfplayScheduler, JobService,
TrainingCoordinator, SyncPlanner and StateService (config statistics, models, matches)."""

from __future__ import annotations

import json
import zlib

from ringrift.common.v1 import common_pb2 as C
from ringrift.jobs.v1 import jobs_pb2, jobs_pb2_grpc
from ringrift.selfplay.v1 import selfplay_pb2, selfplay_pb2_grpc
from ringrift.state.v1 import state_pb2, state_pb2_grpc
from ringrift.sync.v1 import sync_pb2, sync_pb2_grpc
from ringrift.training.v1 import training_pb2, training_pb2_grpc
from ringrift_gateway.domain.upkeep import BASELINES
from ringrift_runtime.errors import NotFound, WrongState
from ringrift_runtime.grpc.calls import call, last

SYNC_GOALS = {"games": sync_pb2.SYNC_GOAL_GAMES_TO_TRAINER, "models": sync_pb2.SYNC_GOAL_MODEL_TO_PLAYERS}
ACTIVE = [C.JOB_STATE_PENDING, C.JOB_STATE_SCHEDULED, C.JOB_STATE_STARTING, C.JOB_STATE_RUNNING]


class PipelineClient:
    def __init__(self, state_channel, jobs_channel, selfplay_channel, training_channel, sync_channel) -> None:
        self._sync = sync_pb2_grpc.SyncPlannerServiceStub(sync_channel)
        self._state = state_pb2_grpc.StateServiceStub(state_channel)
        self._jobs = jobs_pb2_grpc.JobServiceStub(jobs_channel)
        self._selfplay = selfplay_pb2_grpc.SelfplaySchedulerServiceStub(selfplay_channel)
        self._training = training_pb2_grpc.TrainingCoordinatorServiceStub(training_channel)

    async def target(self, node_id: str) -> int:
        reply = await call(self._selfplay.GetTargetJobsForNode(selfplay_pb2.GetTargetJobsForNodeRequest(node_id=node_id)))
        return reply.target_jobs

    async def pick(self, node_id: str, seed: int) -> str:
        request = selfplay_pb2.PickWeightedSelfplayConfigRequest(node_id=node_id, seed=seed)
        return (await call(self._selfplay.PickWeightedSelfplayConfig(request))).config_key

    async def _active(self, kind: str = "", node_id: str = "") -> list[C.Job]:
        jobs: list[C.Job] = []
        token = ""
        while True:
            reply = await call(self._jobs.ListJobs(jobs_pb2.ListJobsRequest(
                states=ACTIVE, kind=kind, node_id=node_id, page=C.PageRequest(page_size=1000, page_token=token))))
            jobs.extend(reply.jobs)
            token = reply.next_page_token
            if not token:
                return jobs

    async def active_jobs_by_node(self, kind: str = "") -> dict[str, int]:
        """Active jobs (of one kind, or all) per node: where their attempt runs, or the
        node they are pinned to."""
        counts: dict[str, int] = {}
        for job in await self._active(kind):
            node = job.attempts[-1].node_id if job.attempts else ""
            node = node or (job.spec.requirements.required_node_ids[0] if job.spec.requirements.required_node_ids else "")
            counts[node] = counts.get(node, 0) + 1
        return counts

    async def active_selfplay_by_node(self) -> dict[str, int]:
        return await self.active_jobs_by_node("selfplay")

    async def active_job_ids(self, node_id: str, kind: str) -> list[str]:
        return [job.job_id for job in await self._active(kind, node_id)]

    async def pending_jobs(self) -> int:
        """Jobs waiting for a node, from StateService's counts (no job is listed)."""
        stats = await call(self._state.GetClusterStats(state_pb2.GetClusterStatsRequest()))
        return sum(c.count for c in stats.jobs if c.state == C.JOB_STATE_PENDING)

    async def cancel(self, job_ids: list[str], reason: str) -> int:
        stopped = 0
        for job_id in job_ids:
            try:
                await call(self._jobs.CancelJob(jobs_pb2.CancelJobRequest(job_id=job_id, reason=reason)))
                stopped += 1
            except (NotFound, WrongState):
                pass  # finished meanwhile
        return stopped

    async def move(self, goal: str, config_key: str, epoch: int) -> tuple[int, int]:
        """Plan and execute one sync goal ("games" to the trainers, "models" to every
        player); (transfers done, transfers failed)."""
        plan = (await call(self._sync.CreateSyncPlan(sync_pb2.CreateSyncPlanRequest(
            goal=SYNC_GOALS[goal], config_key=config_key)))).plan
        if not plan.transfers:
            return 0, 0
        final = await last(self._sync.ExecuteSyncPlan(sync_pb2.ExecuteSyncPlanRequest(plan_id=plan.plan_id, epoch=epoch)))
        return (final.transfers_done, final.transfers_failed) if final else (0, 0)

    async def promoted_models(self) -> list[C.Model]:
        models: list[C.Model] = []
        token = ""
        while True:  # every page: a cluster with years of generations has more than one
            reply = await call(self._state.ListModels(state_pb2.ListModelsRequest(
                statuses=[C.MODEL_STATUS_PROMOTED], page=C.PageRequest(page_size=1000, page_token=token))))
            models.extend(reply.models)
            token = reply.next_page_token
            if not token:
                return models

    async def baseline_games(self, config_key: str) -> dict[str, dict[str, int]]:
        """Games each model has played against each baseline, from the stored matches."""
        reply = await call(self._state.ListMatches(state_pb2.ListMatchesRequest(config_key=config_key)))
        games: dict[str, dict[str, int]] = {}
        for m in reply.matches:
            per = games.setdefault(m.player_a, {})
            per[m.player_b] = per.get(m.player_b, 0) + m.wins + m.losses + m.draws
        return games

    async def submit_validation(self, model: C.Model, games: int, key: str) -> str:
        spec = C.JobSpec(kind="gauntlet", config_key=model.config_key, params={
            "candidate": model.path, "baselines": ",".join(BASELINES), "games": str(games),
            "seed": str(zlib.crc32(model.model_id.encode()))})
        reply = await call(self._jobs.SubmitJob(jobs_pb2.SubmitJobRequest(spec=spec, idempotency_key=key)))
        return reply.job.job_id

    async def job_outcome(self, job_id: str) -> tuple[str, dict]:
        job = (await call(self._jobs.GetJob(jobs_pb2.GetJobRequest(job_id=job_id)))).job
        try:
            result = json.loads(job.result_json or "{}")
        except ValueError:
            result = {}
        return C.JobState.Name(job.state).removeprefix("JOB_STATE_"), result if isinstance(result, dict) else {}

    async def record_matches(self, config_key: str, model_id: str, opponents: dict, key: str, epoch: int) -> int:
        matches = [C.MatchResult(config_key=config_key, player_a=model_id, player_b=name,
                                 wins=int(o.get("wins", 0)), losses=int(o.get("losses", 0)),
                                 draws=int(o.get("draws", 0)), job_id=key.rpartition("/")[2])
                   for name, o in opponents.items()]
        if not matches:
            return 0
        reply = await call(self._state.RecordMatches(state_pb2.RecordMatchesRequest(
            matches=matches, epoch=epoch, idempotency_key=key)))
        return reply.recorded

    async def best_model_paths(self) -> dict[str, str]:
        reply = await call(self._state.GetBestModels(state_pb2.GetBestModelsRequest()))
        return {m.config_key: m.path for m in reply.models}

    async def submit_selfplay(self, jobs: list[tuple[str, str, dict]]) -> int:
        """(node, config, params) each, pinned to its node as a bulk top-up."""
        requests = [
            jobs_pb2.SubmitJobRequest(spec=C.JobSpec(
                kind="selfplay", config_key=config, params={k: str(v) for k, v in params.items()}, top_up=True,
                requirements=C.ResourceRequirements(required_node_ids=[node], min_free_ram_mb=256),
            ))
            for node, config, params in jobs
        ]
        if not requests:
            return 0
        reply = await call(self._jobs.SubmitJobs(jobs_pb2.SubmitJobsRequest(jobs=requests)))
        return len(reply.jobs)

    async def succeeded_selfplay(self, after: int) -> tuple[list[tuple[str, str, int]], int]:
        """(job id, config, games) of self-play jobs that succeeded after a sequence."""
        found: list[tuple[str, str, int]] = []
        reply = await call(self._state.ListEvents(state_pb2.ListEventsRequest(
            after_sequence=after, limit=1000, filter=C.EventFilter(types=[C.EVENT_TYPE_JOB_SUCCEEDED]))))
        for event in reply.events:
            after = event.sequence
            if event.attributes.get("kind") != "selfplay":
                continue
            job = (await call(self._jobs.GetJob(jobs_pb2.GetJobRequest(job_id=event.subject)))).job
            try:
                games = int(json.loads(job.result_json or "{}").get("games", 0))
            except (ValueError, TypeError, AttributeError):
                games = 0
            found.append((job.job_id, job.spec.config_key, games))
        return found, after

    async def add_games(self, config_key: str, games: int, job_id: str, epoch: int) -> None:
        await call(self._state.UpdateConfigStats(state_pb2.UpdateConfigStatsRequest(
            config_key=config_key, add_games=games, mark_dispatch=False, epoch=epoch,
            idempotency_key=f"games/{job_id}")))

    async def trigger_training(self, config_key: str, epoch: int, force: bool = False) -> training_pb2.TriggerTrainingResponse:
        request = training_pb2.TriggerTrainingRequest(config_key=config_key, epoch=epoch, force=force)
        return await call(self._training.TriggerTraining(request))

    async def fit_ratings(self, epoch: int) -> None:
        await call(self._training.FitRatings(training_pb2.FitRatingsRequest(epoch=epoch)))
