"""TrainingCoordinatorService servicer: decode -> Coordinator -> encode."""

from __future__ import annotations

from ringrift.common.v1 import common_pb2
from ringrift.training.v1 import training_pb2 as T
from ringrift.training.v1 import training_pb2_grpc
from ringrift_contracts.check import Check
from ringrift_runtime.grpc.times import to_timestamp
from ringrift_training.domain import stages
from ringrift_training.domain.coordinator import Coordinator, is_run_of_job, is_run_of_model
from ringrift_training.domain.gauntlet import Tally, los, sequential
from ringrift_training.domain.runs import Run, Stage

STAGES = {
    Stage.EXPORTING: T.TRAINING_STAGE_EXPORTING,
    Stage.TRAINING: T.TRAINING_STAGE_TRAINING,
    Stage.EVALUATING: T.TRAINING_STAGE_EVALUATING,
    Stage.PROMOTED: T.TRAINING_STAGE_PROMOTED,
    Stage.REJECTED: T.TRAINING_STAGE_REJECTED,
    Stage.FAILED: T.TRAINING_STAGE_FAILED,
}
DECISIONS = {Stage.PROMOTED: T.GAUNTLET_DECISION_PROMOTE, Stage.REJECTED: T.GAUNTLET_DECISION_REJECT}
MAX_PAGE = 1000


def run_message(run: Run | None) -> T.TrainingRun | None:
    if run is None:
        return None
    return T.TrainingRun(
        run_id=run.run_id,
        config_key=run.config_key,
        stage=STAGES[run.stage],
        node_id=run.node_id,
        export_job_id=run.export_job_id,
        training_job_id=run.training_job_id,
        gauntlet_job_ids=[entry.split(":", 1)[1] for entry in run.gauntlet_jobs],
        candidate_model_id=run.candidate_model_id,
        reason=run.reason,
        started_at=to_timestamp(run.started_at),
        finished_at=to_timestamp(run.finished_at),
        trigger_key=run.trigger_key,
    )


def _fenced(check: Check, epoch: int) -> None:
    check.leader_epoch("epoch", epoch)


class TrainingCoordinatorServicer(training_pb2_grpc.TrainingCoordinatorServiceServicer):
    def __init__(self, coordinator: Coordinator) -> None:
        self._c = coordinator

    async def GetTrainingReadiness(self, request, context):
        check = Check()
        check.config_key("config_key", request.config_key, required=False)
        check.raise_if_invalid()
        found, gpu_nodes = await self._c.readiness(request.config_key)
        return T.GetTrainingReadinessResponse(
            gpu_training_nodes=gpu_nodes,
            configs=[
                T.ConfigReadiness(
                    config_key=r.config_key,
                    ready=r.ready,
                    reason=r.reason,
                    games_total=r.games_total,
                    games_since_training=r.games_since_training,
                    min_games=r.thresholds.min_games,
                    incremental_games=r.thresholds.incremental_games,
                    cooldown_seconds=int(r.thresholds.cooldown_seconds),
                    cooldown_ends_at=to_timestamp(r.cooldown_ends_at),
                    in_progress=r.in_progress,
                )
                for r in found
            ],
        )

    async def TriggerTraining(self, request, context):
        check = Check()
        check.config_key("config_key", request.config_key)
        _fenced(check, request.epoch)
        check.raise_if_invalid()
        started, run, reason = await self._c.trigger(request.config_key, request.force, request.epoch)
        return T.TriggerTrainingResponse(started=started, run=run_message(run), reason=reason)

    async def _drive(self, which, epoch: int):
        """The run ``which`` selects, from the freshest stored state, driven on with ``epoch``."""
        await self._c.refresh()
        run = self._c.find(which)
        self._c.drive(run, epoch)
        return run

    async def DispatchTrainingJob(self, request, context):
        check = Check()
        check.config_key("config_key", request.config_key)
        check.require("run_id", request.run_id)
        _fenced(check, request.epoch)
        check.raise_if_invalid()
        run = await self._drive(
            lambda r: r.run_id == request.run_id and r.config_key == request.config_key, request.epoch
        )
        return T.DispatchTrainingJobResponse(run=run_message(run))

    async def HandleTrainingJobCompletion(self, request, context):
        check = Check()
        check.require("job_id", request.job_id)
        _fenced(check, request.epoch)
        check.raise_if_invalid()
        run = await self._drive(is_run_of_job(request.job_id), request.epoch)
        candidate = None
        if run.candidate_model_id and run.stage in (Stage.EVALUATING, Stage.PROMOTED, Stage.REJECTED):
            candidate = common_pb2.Model(
                model_id=run.candidate_model_id,
                config_key=run.config_key,
                generation=run.generation,
                path=run.candidate_path,
                parent_model_id=run.parent_model_id,
            )
        return T.HandleTrainingJobCompletionResponse(run=run_message(run), candidate=candidate)

    async def RunPostTrainingGauntlet(self, request, context):
        check = Check()
        check.require("model_id", request.model_id)
        _fenced(check, request.epoch)
        check.raise_if_invalid()
        run = await self._drive(is_run_of_model(request.model_id), request.epoch)
        floors = stages.floors(self._c.training, run.config_key)
        results = []
        units = stages.incumbent_units(run)
        gate = sequential(units, stages.players_of(run), stages.gate_rule(self._c.training)) if units else None
        for opponent, (w, l, d) in sorted(run.tallies.items()):
            tally = Tally(w, l, d)
            incumbent = opponent == run.parent_model_id
            results.append(
                T.OpponentResult(
                    opponent=opponent,
                    wins=w,
                    losses=l,
                    draws=d,
                    win_rate=tally.score,
                    floor=floors.get(opponent, 0.0),
                    llr=gate.llr if incumbent and gate else 0.0,
                    los=los(tally) if incumbent else 0.0,
                    units=len(units or []) if incumbent else 0,
                )
            )
        return T.RunPostTrainingGauntletResponse(
            decision=DECISIONS.get(run.stage, T.GAUNTLET_DECISION_CONTINUE),
            reason=run.reason,
            results=results,
            model=common_pb2.Model(
                model_id=run.candidate_model_id, config_key=run.config_key, generation=run.generation
            ),
        )

    async def ListTrainingRuns(self, request, context):
        check = Check()
        check.config_key("config_key", request.config_key, required=False)
        size = request.page.page_size or 100
        check.check("page.page_size", size <= MAX_PAGE, f"must be at most {MAX_PAGE}")
        token = request.page.page_token
        check.check("page.page_token", not token or token.isdigit(), "is not a page token")
        check.raise_if_invalid()
        runs = await self._c.list_runs(request.config_key)
        start = int(token or 0)
        page = runs[start : start + size]
        more = start + size < len(runs)
        return T.ListTrainingRunsResponse(
            runs=[run_message(r) for r in page], next_page_token=str(start + size) if more else ""
        )

    async def RollbackModel(self, request, context):
        check = Check()
        check.trained_config("config_key", request.config_key, self._c.pipeline.configs)
        check.record_id("to_model_id", request.to_model_id, required=False)
        check.check("reason", len(request.reason) <= 500, "must be at most 500 characters")
        _fenced(check, request.epoch)
        check.raise_if_invalid()
        best, archived = await self._c.rollback(request.config_key, request.to_model_id, request.reason, request.epoch)
        model = common_pb2.Model(
            model_id=best.model_id,
            config_key=best.config_key,
            generation=best.generation,
            path=best.path,
            sha256=best.sha256,
            status=common_pb2.MODEL_STATUS_PROMOTED,
        )
        return T.RollbackModelResponse(best=model, archived_model_ids=archived)

    async def FitRatings(self, request, context):
        check = Check()
        check.config_key("config_key", request.config_key, required=False)
        _fenced(check, request.epoch)
        check.raise_if_invalid()
        return T.FitRatingsResponse(ratings=await self._c.fit_ratings(request.config_key, request.epoch))
