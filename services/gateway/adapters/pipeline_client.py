"""The leader's clients for the pipeline loops: SelfplayScheduler, JobService,
TrainingCoordinator and StateService (config statistics, best models)."""

from __future__ import annotations

import json

from ringrift.common.v1 import common_pb2 as C
from ringrift.jobs.v1 import jobs_pb2, jobs_pb2_grpc
from ringrift.selfplay.v1 import selfplay_pb2, selfplay_pb2_grpc
from ringrift.state.v1 import state_pb2, state_pb2_grpc
from ringrift.training.v1 import training_pb2, training_pb2_grpc
from ringrift_runtime.grpc.calls import call

ACTIVE = [C.JOB_STATE_PENDING, C.JOB_STATE_SCHEDULED, C.JOB_STATE_STARTING, C.JOB_STATE_RUNNING]


class PipelineClient:
    def __init__(self, state_channel, jobs_channel, selfplay_channel, training_channel) -> None:
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

    async def active_selfplay_by_node(self) -> dict[str, int]:
        """Active self-play jobs per node: where their attempt runs, or the node they are pinned to."""
        counts: dict[str, int] = {}
        token = ""
        while True:
            reply = await call(self._jobs.ListJobs(jobs_pb2.ListJobsRequest(
                states=ACTIVE, kind="selfplay", page=C.PageRequest(page_size=1000, page_token=token))))
            for job in reply.jobs:
                node = job.attempts[-1].node_id if job.attempts else ""
                node = node or (job.spec.requirements.required_node_ids[0] if job.spec.requirements.required_node_ids else "")
                counts[node] = counts.get(node, 0) + 1
            token = reply.next_page_token
            if not token:
                return counts

    async def best_model_paths(self) -> dict[str, str]:
        reply = await call(self._state.ListModels(state_pb2.ListModelsRequest(
            statuses=[C.MODEL_STATUS_PROMOTED], page=C.PageRequest(page_size=1000))))
        paths = {m.model_id: m.path for m in reply.models}
        return {config: paths[model] for config, model in reply.best_model_by_config.items() if model in paths}

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
