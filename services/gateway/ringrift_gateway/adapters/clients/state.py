"""The gateway's client of StateService: the epoch, the event log, versioned values (the
loops' cursors, pauses, intents and the leader's heartbeat), the registry and statistics."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from ringrift.common.v1 import common_pb2 as C
from ringrift.state.v1 import state_pb2, state_pb2_grpc
from ringrift_contracts.limits import MAX_PAGE_SIZE
from ringrift_contracts.paging import read_after, read_all
from ringrift_contracts.tables import EVENT_TYPES, JOB_STATES
from ringrift_contracts.writes import compare_and_swap
from ringrift_gateway.domain.ports import EventView
from ringrift_runtime.grpc.calls import call, stream


def _event_types(names: list[str]) -> list[int]:
    return [C.EventType.Value(f"EVENT_TYPE_{name}") for name in names]


def _view(event: C.Event) -> EventView:
    return EventView(event.sequence, EVENT_TYPES.name(event.type).upper(), event.subject, dict(event.attributes))


class StateClient:
    def __init__(self, channel: grpc.aio.Channel, source: str) -> None:
        self._stub = state_pb2_grpc.StateServiceStub(channel)
        self._source = source

    # -- epoch and events ---------------------------------------------------------
    async def get_epoch(self) -> state_pb2.GetClusterEpochResponse:
        return await call(self._stub.GetClusterEpoch(state_pb2.GetClusterEpochRequest()))

    async def claim_epoch(self, leader_key: str) -> tuple[int, int]:
        """(epoch issued to this election key, epoch before)."""
        reply = await call(self._stub.ClaimEpoch(state_pb2.ClaimEpochRequest(leader_key=leader_key)))
        return reply.epoch, reply.previous_epoch

    async def publish(
        self,
        event_type: str,
        subject: str,
        epoch: int,
        idempotency_key: str = "",
        attributes: dict[str, str] | None = None,
    ) -> C.Event:
        """Publish an event by type name ("NODE_JOINED"); a repeated key returns the first."""
        (event_code,) = _event_types([event_type])
        event = C.Event(
            type=event_code,
            source=self._source,
            subject=subject,
            epoch=epoch,
            idempotency_key=idempotency_key,
            attributes=attributes or {},
        )
        return (await call(self._stub.PublishEvent(state_pb2.PublishEventRequest(event=event)))).event

    async def events_after(self, after: int, types: list[str]) -> list[EventView]:
        """Every event of the named types after ``after``, however many pages that is."""
        event_filter = C.EventFilter(types=_event_types(types))

        async def fetch(position: int) -> list[C.Event]:
            request = state_pb2.ListEventsRequest(after_sequence=position, filter=event_filter)
            return list((await call(self._stub.ListEvents(request))).events)

        return [_view(e) for e in await read_after(fetch, after, lambda e: e.sequence)]

    async def follow_events(self, types: list[str]) -> AsyncIterator[EventView]:
        """Events of the named types from now on, as StateService records them."""
        after = (await self.cluster_stats()).last_event_sequence
        async for reply in self.watch_events(after, C.EventFilter(types=_event_types(types))):
            yield _view(reply.event)

    async def event_page(self, after: int, types: list[str], limit: int) -> list[EventView]:
        """One page of events of the named types after ``after`` (a loop's bounded round)."""
        request = state_pb2.ListEventsRequest(
            after_sequence=after, filter=C.EventFilter(types=_event_types(types)), limit=limit
        )
        return [_view(e) for e in (await call(self._stub.ListEvents(request))).events]

    async def recent_events(self, limit: int) -> list[C.Event]:
        """The newest ``limit`` events, oldest first."""
        stats = await self.cluster_stats()
        after = max(0, stats.last_event_sequence - limit)
        reply = await call(self._stub.ListEvents(state_pb2.ListEventsRequest(after_sequence=after, limit=limit)))
        return list(reply.events)

    def watch_events(
        self, from_sequence: int, event_filter: C.EventFilter
    ) -> AsyncIterator[state_pb2.WatchEventsResponse]:
        request = state_pb2.WatchEventsRequest(from_sequence=from_sequence, filter=event_filter)
        return stream(self._stub.WatchEvents(request))

    # -- versioned values ----------------------------------------------------------
    async def load_state(self, namespace: str, key: str) -> state_pb2.LoadStateResponse:
        return await call(self._stub.LoadState(state_pb2.LoadStateRequest(namespace=namespace, key=key)))

    async def persist_state(self, namespace: str, key: str, value: bytes, expected_version: int, epoch: int) -> int:
        request = state_pb2.PersistStateRequest(
            namespace=namespace, key=key, value=value, expected_version=expected_version, epoch=epoch
        )
        return (await call(self._stub.PersistState(request))).version

    async def update_state(self, namespace: str, key: str, change, epoch: int = 0) -> bytes:
        """Replace a value with ``change(current bytes)``, read again when another writer
        got there first; returns what was written."""

        async def load() -> tuple[bytes, int]:
            stored = await self.load_state(namespace, key)
            return (stored.value if stored.found else b""), (stored.version if stored.found else 0)

        async def store(value: bytes, version: int) -> bytes:
            await self.persist_state(namespace, key, value, version, epoch)
            return value

        return await compare_and_swap(load, store, change, f"{namespace}/{key}")

    # -- nodes, registry, statistics ------------------------------------------------
    async def record_nodes(self, alive: list[C.NodeInfo], departed: list[str], epoch: int) -> None:
        request = state_pb2.RecordNodesRequest(alive=alive, departed_node_ids=departed, epoch=epoch)
        await call(self._stub.RecordNodes(request))

    async def cluster_stats(self) -> state_pb2.GetClusterStatsResponse:
        return await call(self._stub.GetClusterStats(state_pb2.GetClusterStatsRequest()))

    async def pending_jobs(self) -> int:
        """Jobs waiting for a node, from StateService's counts (no job is listed)."""
        stats = await self.cluster_stats()
        pending = JOB_STATES.value("pending")
        return sum(c.count for c in stats.jobs if c.state == pending)

    async def best_models(self) -> list[C.Model]:
        return list((await call(self._stub.GetBestModels(state_pb2.GetBestModelsRequest()))).models)

    async def best_model_ids(self) -> dict[str, str]:
        return {m.config_key: m.model_id for m in await self.best_models()}

    async def best_model_paths(self) -> dict[str, str]:
        return {m.config_key: m.path for m in await self.best_models()}

    async def models(self, config_key: str, statuses) -> state_pb2.ListModelsResponse:
        return await call(self._stub.ListModels(state_pb2.ListModelsRequest(config_key=config_key, statuses=statuses)))

    async def promoted_models(self) -> list[C.Model]:
        """Every promoted model, however many pages (years of generations are more than one)."""

        async def fetch(token: str) -> tuple[list[C.Model], str]:
            page = C.PageRequest(page_size=MAX_PAGE_SIZE, page_token=token)
            request = state_pb2.ListModelsRequest(statuses=[C.MODEL_STATUS_PROMOTED], page=page)
            reply = await call(self._stub.ListModels(request))
            return list(reply.models), reply.next_page_token

        return await read_all(fetch)

    async def ratings(self, config_key: str, include_history: bool) -> list[C.Rating]:
        request = state_pb2.ListRatingsRequest(config_key=config_key, include_history=include_history)
        return list((await call(self._stub.ListRatings(request))).ratings)

    async def baseline_games(self, config_key: str) -> dict[str, dict[str, int]]:
        """Games each model has played against each opponent, from the stored matches."""
        reply = await call(self._stub.ListMatches(state_pb2.ListMatchesRequest(config_key=config_key)))
        games: dict[str, dict[str, int]] = {}
        for m in reply.matches:
            per = games.setdefault(m.player_a, {})
            per[m.player_b] = per.get(m.player_b, 0) + m.wins + m.losses + m.draws
        return games

    async def record_matches(self, config_key: str, model_id: str, opponents: dict, key: str, epoch: int) -> int:
        """A gauntlet job's results as matches: the pairwise results (the model ahead of,
        level with, behind each opponent of a game), what ratings are fitted from for every
        player count; games won only where a job reports no pairwise results."""
        matches = []
        for name, outcome in opponents.items():
            counts = outcome.get("pairwise") or outcome
            matches.append(
                C.MatchResult(
                    config_key=config_key,
                    player_a=model_id,
                    player_b=name,
                    wins=int(counts.get("wins", 0)),
                    losses=int(counts.get("losses", 0)),
                    draws=int(counts.get("draws", 0)),
                    job_id=key.rpartition("/")[2],
                )
            )
        if not matches:
            return 0
        request = state_pb2.RecordMatchesRequest(matches=matches, epoch=epoch, idempotency_key=key)
        return (await call(self._stub.RecordMatches(request))).recorded

    async def add_games(self, config_key: str, games: int, cpu_seconds: float, job_id: str, epoch: int) -> None:
        request = state_pb2.UpdateConfigStatsRequest(
            config_key=config_key,
            add_games=games,
            add_cpu_seconds=cpu_seconds,
            mark_dispatch=False,
            epoch=epoch,
            idempotency_key=f"games/{job_id}",
        )
        await call(self._stub.UpdateConfigStats(request))

    async def sync_transfers(self, plan_id: str) -> list[state_pb2.SyncTransfer]:
        page = C.PageRequest(page_size=MAX_PAGE_SIZE)
        request = state_pb2.ListSyncTransfersRequest(plan_id=plan_id, page=page)
        return list((await call(self._stub.ListSyncTransfers(request))).transfers)
