"""The scheduler's view of StateService: config statistics, ratings, model generations,
evaluation outcomes (stored as events, so they survive any failover) and the self-play
jobs running on a node."""

from __future__ import annotations

from ringrift.common.v1 import common_pb2
from ringrift.state.v1 import state_pb2, state_pb2_grpc
from ringrift_contracts.jobs import ON_NODE
from ringrift_contracts.limits import MAX_PAGE_SIZE
from ringrift_contracts.paging import read_after, read_all
from ringrift_runtime.grpc.calls import call
from ringrift_runtime.grpc.times import from_timestamp

OUTCOME_SOURCE = "selfplay"
ACTIVE = sorted(int(s) for s in ON_NODE)


def _seconds(stamp) -> float:
    moment = from_timestamp(stamp)
    return moment.timestamp() if moment else 0.0


class SchedulerState:
    def __init__(self, channel) -> None:
        self._stub = state_pb2_grpc.StateServiceStub(channel)

    async def config_stats(self) -> dict[str, dict]:
        reply = await call(self._stub.ListConfigStats(state_pb2.ListConfigStatsRequest()))
        return {
            s.config_key: {
                "games_total": s.games_total,
                "games_since_training": s.games_since_training,
                "started": _seconds(s.last_training_started),
                "completed": _seconds(s.last_training_completed),
                "cpu_seconds_per_game": s.cpu_seconds_per_game,
            }
            for s in reply.stats
        }

    async def ratings(self) -> dict[str, dict[str, float]]:
        reply = await call(self._stub.ListRatings(state_pb2.ListRatingsRequest()))
        found: dict[str, dict[str, float]] = {}
        for rating in reply.ratings:
            found.setdefault(rating.config_key, {}).setdefault(rating.player, rating.elo)
        return found

    async def generations(self) -> dict[str, dict[str, int]]:
        """Model id -> generation, per config."""

        async def fetch(token: str) -> tuple[list[common_pb2.Model], str]:
            page = common_pb2.PageRequest(page_size=MAX_PAGE_SIZE, page_token=token)
            reply = await call(self._stub.ListModels(state_pb2.ListModelsRequest(page=page)))
            return list(reply.models), reply.next_page_token

        found: dict[str, dict[str, int]] = {}
        for model in await read_all(fetch):
            found.setdefault(model.config_key, {})[model.model_id] = model.generation
        return found

    async def evaluations(self) -> dict[str, list[tuple[float, float, bool]]]:
        """Evaluation outcomes per config, oldest first."""
        event_filter = common_pb2.EventFilter(types=[common_pb2.EVENT_TYPE_EVALUATION_COMPLETED])

        async def fetch(after: int) -> list[common_pb2.Event]:
            request = state_pb2.ListEventsRequest(after_sequence=after, filter=event_filter)
            return list((await call(self._stub.ListEvents(request))).events)

        found: dict[str, list[tuple[float, float, bool]]] = {}
        for event in await read_after(fetch, 0, lambda e: e.sequence):
            if event.source == OUTCOME_SOURCE and "win_rate" in event.attributes:
                outcome = (
                    _seconds(event.time),
                    float(event.attributes["win_rate"]),
                    event.attributes.get("promoted") == "true",
                )
                found.setdefault(event.config_key, []).append(outcome)
        return found

    async def record_outcome(self, config_key: str, win_rate: float, promoted: bool, job_id: str, epoch: int) -> None:
        event = common_pb2.Event(
            type=common_pb2.EVENT_TYPE_EVALUATION_COMPLETED,
            source=OUTCOME_SOURCE,
            subject=job_id,
            config_key=config_key,
            epoch=epoch,
            idempotency_key=f"evaluation-outcome/{job_id}",
            attributes={"win_rate": f"{win_rate:.6f}", "promoted": "true" if promoted else "false"},
        )
        await call(self._stub.PublishEvent(state_pb2.PublishEventRequest(event=event)))

    async def running_configs(self, node_id: str) -> set[str]:
        job_filter = state_pb2.JobFilter(states=ACTIVE, kind="selfplay", node_id=node_id)

        async def fetch(token: str) -> tuple[list[common_pb2.Job], str]:
            page = common_pb2.PageRequest(page_size=MAX_PAGE_SIZE, page_token=token)
            reply = await call(self._stub.ListJobs(state_pb2.ListJobsRequest(filter=job_filter, page=page)))
            return list(reply.jobs), reply.next_page_token

        return {job.spec.config_key for job in await read_all(fetch)}
