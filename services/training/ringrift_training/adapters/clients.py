"""TrainingCoordinator's clients: StateService (runs as events, models, matches, ratings,
config statistics), JobService, NodeSelector, SyncPlanner and SelfplayScheduler. Every
call speaks the error taxonomy (ringrift_runtime.grpc.calls.call)."""

from __future__ import annotations

import asyncio
import json

from ringrift.common.v1 import common_pb2 as C
from ringrift.jobs.v1 import jobs_pb2, jobs_pb2_grpc
from ringrift.nodes.v1 import nodes_pb2, nodes_pb2_grpc
from ringrift.selfplay.v1 import selfplay_pb2, selfplay_pb2_grpc
from ringrift.state.v1 import state_pb2, state_pb2_grpc
from ringrift.sync.v1 import sync_pb2, sync_pb2_grpc
from ringrift_contracts.jobs import ATTEMPT_ENDED
from ringrift_contracts.nodes import gpu_count
from ringrift_contracts.paging import read_after, read_all
from ringrift_contracts.tables import JOB_STATES
from ringrift_runtime.errors import AlreadyExists, NotFound
from ringrift_runtime.grpc.calls import call, last
from ringrift_runtime.grpc.times import from_timestamp
from ringrift_training.domain.ratings import Fitted, Result
from ringrift_training.domain.runs import Job, Lineage, ModelRef, Run

GOALS = {"games": sync_pb2.SYNC_GOAL_GAMES_TO_TRAINER, "models": sync_pb2.SYNC_GOAL_MODEL_TO_PLAYERS}
# A job whose attempt has ended, by its lower-case state name; any other state is "active".
ENDED = {int(s): JOB_STATES.name(s) for s in ATTEMPT_ENDED}


def _seconds(stamp) -> float:
    moment = from_timestamp(stamp)
    return moment.timestamp() if moment else 0.0


def model_ref(model: C.Model) -> ModelRef:
    return ModelRef(model.model_id, model.config_key, model.generation, model.path, model.sha256, model.node_id)


class State:
    def __init__(self, channel) -> None:
        self._stub = state_pb2_grpc.StateServiceStub(channel)

    async def run_events(self, after: int) -> tuple[list[tuple[int, dict]], int]:
        """TRAINING_STAGE_CHANGED events after a sequence: (sequence, attributes)."""
        event_filter = C.EventFilter(types=[C.EVENT_TYPE_TRAINING_STAGE_CHANGED])

        async def fetch(position: int) -> list[C.Event]:
            request = state_pb2.ListEventsRequest(after_sequence=position, filter=event_filter)
            return list((await call(self._stub.ListEvents(request))).events)

        events = await read_after(fetch, after, lambda e: e.sequence)
        return [(e.sequence, dict(e.attributes)) for e in events], events[-1].sequence if events else after

    async def event_times(self, event_type: str, subject: str) -> list[float]:
        """When each event of a type about a subject was recorded (unix seconds), oldest first."""
        event_filter = C.EventFilter(types=[C.EventType.Value(f"EVENT_TYPE_{event_type}")], subject=subject)

        async def fetch(position: int) -> list[C.Event]:
            request = state_pb2.ListEventsRequest(after_sequence=position, filter=event_filter)
            return list((await call(self._stub.ListEvents(request))).events)

        events = await read_after(fetch, 0, lambda e: e.sequence)
        return [_seconds(e.time) for e in events]

    async def publish(
        self, event_type: str, subject: str, config_key: str, attributes: dict, epoch: int, key: str
    ) -> C.Event:
        """Publish an event by type name ("TRAINING_STARTED"); a repeated key returns the first."""
        event = C.Event(
            type=C.EventType.Value(f"EVENT_TYPE_{event_type}"),
            source="training",
            subject=subject,
            config_key=config_key,
            epoch=epoch,
            attributes={k: str(v) for k, v in attributes.items()},
            idempotency_key=key,
        )
        return (await call(self._stub.PublishEvent(state_pb2.PublishEventRequest(event=event)))).event

    async def save_run(self, run: Run, epoch: int, key: str) -> None:
        await self.publish("TRAINING_STAGE_CHANGED", run.run_id, run.config_key, run.attributes(), epoch, key)

    async def stats(self) -> dict[str, state_pb2.ConfigStats]:
        reply = await call(self._stub.ListConfigStats(state_pb2.ListConfigStatsRequest()))
        return {s.config_key: s for s in reply.stats}

    async def mark(self, config_key: str, epoch: int, key: str, started: bool = False, completed: bool = False) -> None:
        await call(
            self._stub.UpdateConfigStats(
                state_pb2.UpdateConfigStatsRequest(
                    config_key=config_key,
                    mark_training_started=started,
                    mark_training_completed=completed,
                    epoch=epoch,
                    idempotency_key=key,
                )
            )
        )

    async def best_model(self, config_key: str) -> ModelRef | None:
        reply = await call(self._stub.GetBestModels(state_pb2.GetBestModelsRequest(config_keys=[config_key])))
        return model_ref(reply.models[0]) if reply.models else None

    async def promoted_models(self, config_key: str) -> list[ModelRef]:
        """Every model of the config whose status is PROMOTED (the best and the earlier ones)."""

        async def fetch(token: str) -> tuple[list[ModelRef], str]:
            request = state_pb2.ListModelsRequest(
                config_key=config_key,
                statuses=[C.MODEL_STATUS_PROMOTED],
                page=C.PageRequest(page_size=1000, page_token=token),
            )
            reply = await call(self._stub.ListModels(request))
            return [model_ref(m) for m in reply.models], reply.next_page_token

        return await read_all(fetch)

    async def register(
        self,
        ref: ModelRef,
        parent_model_id: str,
        training_job_id: str,
        training_games: int,
        epoch: int,
        lineage: Lineage | None = None,
    ) -> C.Model:
        lineage = lineage or Lineage([], [])
        model = C.Model(
            training_files=lineage.training_files,
            game_sources=[
                C.GameSource(job_id=s["job_id"], node_id=s["node_id"], games=s["games"], skipped=s["skipped"])
                for s in lineage.sources
            ],
            skipped_games=lineage.skipped_games,
            model_id=ref.model_id,
            config_key=ref.config_key,
            generation=ref.generation,
            parent_model_id=parent_model_id,
            training_job_id=training_job_id,
            path=ref.path,
            sha256=ref.sha256,
            training_games=training_games,
            node_id=ref.node_id,
        )
        try:
            return (
                await call(self._stub.RegisterModel(state_pb2.RegisterModelRequest(model=model, epoch=epoch)))
            ).model
        except AlreadyExists:  # a retried step: the model was registered the first time
            reply = await call(self._stub.ListModels(state_pb2.ListModelsRequest(config_key=model.config_key)))
            return next(m for m in reply.models if m.model_id == model.model_id)

    async def set_status(self, model_id: str, status: str, reason: str, epoch: int) -> C.Model:
        """Set a model's status by name ("PROMOTED", "REJECTED")."""
        request = state_pb2.SetModelStatusRequest(
            model_id=model_id, status=C.ModelStatus.Value(f"MODEL_STATUS_{status}"), reason=reason[:500], epoch=epoch
        )
        return (await call(self._stub.SetModelStatus(request))).model

    async def record_matches(self, config_key: str, results: list[Result], key: str, epoch: int) -> None:
        matches = [
            C.MatchResult(
                config_key=config_key,
                player_a=r.player_a,
                player_b=r.player_b,
                wins=r.wins,
                losses=r.losses,
                draws=r.draws,
            )
            for r in results
        ]
        await call(
            self._stub.RecordMatches(state_pb2.RecordMatchesRequest(matches=matches, idempotency_key=key, epoch=epoch))
        )

    async def matches(self, config_key: str) -> list[Result]:
        reply = await call(self._stub.ListMatches(state_pb2.ListMatchesRequest(config_key=config_key)))
        return [Result(m.player_a, m.player_b, m.wins, m.losses, m.draws) for m in reply.matches]

    async def put_ratings(self, config_key: str, fitted: list[Fitted], epoch: int) -> list[C.Rating]:
        ratings = [
            C.Rating(config_key=config_key, player=f.player, elo=f.elo, stderr=f.stderr, games=f.games) for f in fitted
        ]
        await call(
            self._stub.PutRatings(state_pb2.PutRatingsRequest(config_key=config_key, ratings=ratings, epoch=epoch))
        )
        return ratings


class Jobs:
    def __init__(self, channel) -> None:
        self._stub = jobs_pb2_grpc.JobServiceStub(channel)

    async def submit(self, kind: str, config_key: str, params: dict, node_id: str, key: str) -> str:
        """A pipeline job pinned to the run's node (which holds its inputs); the training
        role is required there whatever the kind."""
        values = {k: str(v) for k, v in params.items() if v != ""}  # an empty optional parameter is left out
        spec = C.JobSpec(
            kind=kind,
            config_key=config_key,
            params=values,
            requirements=C.ResourceRequirements(
                required_node_ids=[node_id], role=C.NODE_ROLE_TRAINING, min_free_ram_mb=256
            ),
        )
        reply = await call(self._stub.SubmitJob(jobs_pb2.SubmitJobRequest(spec=spec, idempotency_key=key)))
        return reply.job.job_id

    async def nodes_of(self, job_ids: list[str]) -> dict[str, str]:
        """The node that ran each job (its current attempt's); a job no longer known is left out.
        Up to 8 lookups in flight: JobService has no lookup by many ids."""
        limit = asyncio.Semaphore(8)

        async def one(job_id: str) -> tuple[str, str]:
            async with limit:
                try:
                    job = (await call(self._stub.GetJob(jobs_pb2.GetJobRequest(job_id=job_id)))).job
                except NotFound:
                    return job_id, ""
                return job_id, job.node_id

        found = await asyncio.gather(*(one(j) for j in dict.fromkeys(job_ids) if j))
        return {job_id: node for job_id, node in found if node}

    async def get(self, job_id: str) -> Job:
        job = (await call(self._stub.GetJob(jobs_pb2.GetJobRequest(job_id=job_id)))).job
        result = {}
        if job.result_json:
            try:
                result = json.loads(job.result_json)
            except ValueError:
                result = {}
        error = job.attempts[-1].error if job.attempts else ""
        return Job(job.job_id, ENDED.get(job.state, "active"), result, error)


class Nodes:
    def __init__(self, channel) -> None:
        self._stub = nodes_pb2_grpc.NodeSelectorServiceStub(channel)

    async def best_trainer(self, config_key: str, prefer: list[str], exclude: list[str]) -> str | None:
        spec = C.JobSpec(
            kind="train",
            config_key=config_key,
            requirements=C.ResourceRequirements(
                role=C.NODE_ROLE_TRAINING, preferred_node_ids=prefer, min_free_ram_mb=256
            ),
        )
        reply = await call(
            self._stub.RankNodes(nodes_pb2.RankNodesRequest(spec=spec, top_k=1, exclude_node_ids=exclude))
        )
        return reply.ranked[0].node_id if reply.ranked else None

    async def reserve(self, node_id: str, holder: str, ttl: int, epoch: int) -> None:
        await call(
            self._stub.ReserveNode(
                nodes_pb2.ReserveNodeRequest(
                    node_id=node_id, purpose="training", holder=holder, ttl_seconds=ttl, epoch=epoch
                )
            )
        )

    async def release(self, node_id: str, holder: str, epoch: int) -> None:
        await call(self._stub.ReleaseNode(nodes_pb2.ReleaseNodeRequest(node_id=node_id, holder=holder, epoch=epoch)))

    async def quarantine(self, node_id: str, reason: str) -> None:
        """Quarantine for NodeSelector's default time (it ends by itself)."""
        await call(self._stub.QuarantineNode(nodes_pb2.QuarantineNodeRequest(node_id=node_id, reason=reason)))

    async def gpu_trainers(self) -> int:
        reply = await call(self._stub.ListNodes(nodes_pb2.ListNodesRequest()))
        return sum(1 for n in reply.nodes if C.NODE_ROLE_TRAINING in n.declared.roles and gpu_count(n))


class Sync:
    def __init__(self, channel) -> None:
        self._stub = sync_pb2_grpc.SyncPlannerServiceStub(channel)

    async def game_holders(self, config_key: str) -> list[str]:
        reply = await call(self._stub.CollectManifests(sync_pb2.CollectManifestsRequest(config_key=config_key)))
        counts = {m.node_id: sum(f.game_count for f in m.files if f.kind == C.FILE_KIND_GAMES) for m in reply.manifests}
        return [n for n, c in sorted(counts.items(), key=lambda kv: -kv[1]) if c][:3]

    async def move(
        self, goal: str, config_key: str, targets: list[str], epoch: int, model_sha256: str = ""
    ) -> tuple[int, int]:
        """Plan and execute ("games" to the targets, "models" to them or to every player);
        (transfers done, transfers failed)."""
        plan = (
            await call(
                self._stub.CreateSyncPlan(
                    sync_pb2.CreateSyncPlanRequest(
                        goal=GOALS[goal], config_key=config_key, target_node_ids=targets, model_sha256=model_sha256
                    )
                )
            )
        ).plan
        if not plan.transfers:
            return 0, 0
        final = await last(
            self._stub.ExecuteSyncPlan(sync_pb2.ExecuteSyncPlanRequest(plan_id=plan.plan_id, epoch=epoch))
        )
        return (final.transfers_done, final.transfers_failed) if final else (0, 0)


class Scheduler:
    def __init__(self, channel) -> None:
        self._stub = selfplay_pb2_grpc.SelfplaySchedulerServiceStub(channel)

    async def record_outcome(self, config_key: str, win_rate: float, promoted: bool, job_id: str, epoch: int) -> None:
        await call(
            self._stub.RecordEvaluationOutcome(
                selfplay_pb2.RecordEvaluationOutcomeRequest(
                    config_key=config_key, win_rate=win_rate, promoted=promoted, job_id=job_id, epoch=epoch
                )
            )
        )
