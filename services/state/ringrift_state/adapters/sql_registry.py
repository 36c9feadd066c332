"""Nodes seen, models and best pointers, matches, ratings, per-config statistics and sync
transfers. Rows keep the whole protobuf message plus the columns queries filter on;
every write runs behind the fencing write lock (sql.lock_and_fence)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.engine import Connection

from ringrift.common.v1 import common_pb2
from ringrift.state.v1 import state_pb2
from ringrift_runtime.db import Database
from ringrift_runtime.errors import AlreadyExists, NotFound
from ringrift_runtime.grpc.times import now as utc_now
from ringrift_runtime.grpc.times import to_timestamp
from ringrift_runtime.ids import ulid
from ringrift_state.adapters.sql import _utc, append_event_rows, lock_and_fence
from ringrift_state.adapters.tables import (
    applied_keys,
    best_models,
    config_stats,
    matches,
    models,
    nodes_seen,
    ratings,
    sync_transfers,
)
from ringrift_state.domain.model import NewEvent

M = common_pb2
MODEL_EVENTS = {
    M.MODEL_STATUS_PROMOTED: M.EVENT_TYPE_MODEL_PROMOTED,
    M.MODEL_STATUS_REJECTED: M.EVENT_TYPE_MODEL_REJECTED,
    M.MODEL_STATUS_ARCHIVED: M.EVENT_TYPE_MODEL_ARCHIVED,
}


def _stamp(value: datetime | None = None):
    return to_timestamp(value or utc_now())


def _first_time(connection: Connection, key: str) -> bool:
    """Record an idempotency key; False when it was applied before."""
    if connection.execute(select(applied_keys.c.key).where(applied_keys.c.key == key)).first():
        return False
    connection.execute(applied_keys.insert().values(key=key))
    return True


class SqlRegistry:
    def __init__(self, db: Database, rating_fits_kept: int = 500) -> None:
        self._db = db
        self._fits_kept = rating_fits_kept  # retention of each config's rating history

    # -- nodes seen -----------------------------------------------------------------
    async def record_nodes(self, alive: list[M.NodeInfo], departed: list[str], epoch: int) -> int:
        now = utc_now()

        def _write(connection: Connection) -> int:
            lock_and_fence(connection, epoch)
            known = {
                r.node_id
                for r in connection.execute(
                    select(nodes_seen.c.node_id).where(nodes_seen.c.node_id.in_([n.node_id for n in alive]))
                )
            }
            for node in alive:
                values = dict(info=node.SerializeToString(), last_seen=now, alive=True)
                if node.node_id in known:
                    connection.execute(update(nodes_seen).where(nodes_seen.c.node_id == node.node_id).values(**values))
                else:
                    connection.execute(nodes_seen.insert().values(node_id=node.node_id, first_seen=now, **values))
            if departed:
                connection.execute(
                    update(nodes_seen).where(nodes_seen.c.node_id.in_(departed)).values(alive=False, last_seen=now)
                )
            return len(alive) + len(departed)

        return await self._db.write(_write)

    async def nodes(self, alive_only: bool) -> list[state_pb2.NodeRecord]:
        query = select(nodes_seen).order_by(nodes_seen.c.node_id)
        if alive_only:
            query = query.where(nodes_seen.c.alive.is_(True))

        def _read(connection: Connection) -> list[state_pb2.NodeRecord]:
            rows = connection.execute(query).all()
            return [
                state_pb2.NodeRecord(
                    node=M.NodeInfo.FromString(r.info),
                    first_seen=_stamp(_utc(r.first_seen)),
                    last_seen=_stamp(_utc(r.last_seen)),
                    alive=r.alive,
                )
                for r in rows
            ]

        return await self._db.read(_read)

    # -- models -----------------------------------------------------------------------
    async def register_model(self, model: M.Model, epoch: int) -> M.Model:
        stored = M.Model()
        stored.CopyFrom(model)
        stored.model_id = stored.model_id or ulid()
        stored.status = M.MODEL_STATUS_CANDIDATE
        stored.created_at.CopyFrom(_stamp())

        def _write(connection: Connection) -> M.Model:
            lock_and_fence(connection, epoch)
            if connection.execute(select(models.c.model_id).where(models.c.model_id == stored.model_id)).first():
                raise AlreadyExists(f"model {stored.model_id} is registered already")
            connection.execute(
                models.insert().values(
                    model_id=stored.model_id,
                    config_key=stored.config_key,
                    status=stored.status,
                    created_at=utc_now(),
                    model=stored.SerializeToString(),
                )
            )
            return stored

        return await self._db.write(_write)

    async def set_model_status(self, model_id: str, status: int, reason: str, epoch: int) -> tuple[M.Model, str]:
        def _write(connection: Connection) -> tuple[M.Model, str]:
            lock_and_fence(connection, epoch)
            row = connection.execute(select(models).where(models.c.model_id == model_id)).first()
            if row is None:
                raise NotFound(f"model {model_id} does not exist")
            model = M.Model.FromString(row.model)
            model.status, model.status_reason = status, reason
            connection.execute(
                update(models)
                .where(models.c.model_id == model_id)
                .values(status=status, model=model.SerializeToString())
            )
            previous, fallback = "", ""
            if status in (M.MODEL_STATUS_ARCHIVED, M.MODEL_STATUS_REJECTED):
                fallback = _fall_back(connection, model)
            if status == M.MODEL_STATUS_PROMOTED:
                current = (
                    connection.execute(
                        select(best_models.c.model_id).where(best_models.c.config_key == model.config_key)
                    )
                ).first()
                previous = current.model_id if current else ""
                if current:
                    connection.execute(
                        update(best_models)
                        .where(best_models.c.config_key == model.config_key)
                        .values(model_id=model_id)
                    )
                else:
                    connection.execute(best_models.insert().values(config_key=model.config_key, model_id=model_id))
            if status in MODEL_EVENTS:
                append_event_rows(
                    connection,
                    [
                        NewEvent(
                            type=MODEL_EVENTS[status],
                            source="state",
                            subject=model_id,
                            config_key=model.config_key,
                            attributes={
                                "generation": str(model.generation),
                                "reason": reason[:500],
                                "previous_best": previous,
                                **({"best_now": fallback} if fallback else {}),
                            },
                            epoch=epoch,
                        )
                    ],
                )
            return model, previous

        return await self._db.write(_write)

    async def list_models(self, config_key: str, statuses: list[int], limit: int, after: str):
        query = select(models.c.model_id, models.c.model).order_by(models.c.model_id.desc()).limit(limit)
        if config_key:
            query = query.where(models.c.config_key == config_key)
        if statuses:
            query = query.where(models.c.status.in_(statuses))
        if after:
            query = query.where(models.c.model_id < after)

        def _read(connection: Connection) -> tuple[list[M.Model], dict[str, str], str]:
            rows = connection.execute(query).all()
            best = {r.config_key: r.model_id for r in connection.execute(select(best_models))}
            found = [M.Model.FromString(r.model) for r in rows]
            return found, best, (found[-1].model_id if len(found) == limit else "")

        return await self._db.read(_read)

    async def best_models(self, config_keys: list[str]) -> list[M.Model]:
        """The best model of each config (of ``config_keys`` when given), by config key; a
        best model archived or rejected since its promotion is no config's best."""
        query = (
            select(models.c.model)
            .join(best_models, best_models.c.model_id == models.c.model_id)
            .where(models.c.status == M.MODEL_STATUS_PROMOTED)
            .order_by(best_models.c.config_key)
        )
        if config_keys:
            query = query.where(best_models.c.config_key.in_(config_keys))

        def _read(connection: Connection) -> list[M.Model]:
            rows = connection.execute(query).all()
            return [M.Model.FromString(r.model) for r in rows]

        return await self._db.read(_read)

    # -- matches and ratings ------------------------------------------------------------
    async def record_matches(self, results: list[M.MatchResult], key: str, epoch: int) -> int:
        def _write(connection: Connection) -> int:
            lock_and_fence(connection, epoch)
            if key and not _first_time(connection, f"matches:{key}"):
                return 0
            now = _stamp()
            rows = []
            for result in results:
                stored = M.MatchResult()
                stored.CopyFrom(result)
                stored.recorded_at.CopyFrom(now)
                rows.append(dict(config_key=result.config_key, match=stored.SerializeToString()))
            if rows:
                connection.execute(matches.insert(), rows)
            return len(rows)

        return await self._db.write(_write)

    async def list_matches(self, config_key: str) -> list[M.MatchResult]:
        def _read(connection: Connection) -> list[M.MatchResult]:
            rows = connection.execute(
                select(matches.c.match).where(matches.c.config_key == config_key).order_by(matches.c.id)
            )
            return [M.MatchResult.FromString(r.match) for r in rows]

        return await self._db.read(_read)

    async def put_ratings(self, config_key: str, fitted: list[M.Rating], epoch: int) -> None:
        def _write(connection: Connection) -> None:
            lock_and_fence(connection, epoch)
            last = (
                connection.execute(select(func.max(ratings.c.fit)).where(ratings.c.config_key == config_key)).scalar()
                or 0
            )
            now = _stamp()
            rows = []
            for rating in fitted:
                stored = M.Rating()
                stored.CopyFrom(rating)
                stored.config_key = config_key
                stored.fitted_at.CopyFrom(now)
                rows.append(dict(config_key=config_key, fit=last + 1, rating=stored.SerializeToString()))
            if rows:
                connection.execute(ratings.insert(), rows)
                # Retention: the newest fits of the config stay (the matches they were fitted
                # from are kept, so any of them can be fitted again).
                connection.execute(
                    ratings.delete().where(
                        ratings.c.config_key == config_key, ratings.c.fit <= last + 1 - self._fits_kept
                    )
                )
                append_event_rows(
                    connection,
                    [
                        NewEvent(
                            type=M.EVENT_TYPE_RATINGS_UPDATED,
                            source="state",
                            subject=config_key,
                            config_key=config_key,
                            attributes={"fit": str(last + 1), "players": str(len(rows))},
                            epoch=epoch,
                        )
                    ],
                )

        await self._db.write(_write)

    async def list_ratings(self, config_key: str, include_history: bool) -> list[M.Rating]:
        query = select(ratings.c.config_key, ratings.c.fit, ratings.c.rating).order_by(
            ratings.c.fit.desc(), ratings.c.id
        )
        if config_key:
            query = query.where(ratings.c.config_key == config_key)
        if not include_history:  # each config's latest fit only, chosen by the database
            latest = select(ratings.c.config_key, func.max(ratings.c.fit).label("fit")).group_by(ratings.c.config_key)
            if config_key:
                latest = latest.where(ratings.c.config_key == config_key)
            newest = latest.subquery()
            query = query.join(newest, (ratings.c.config_key == newest.c.config_key) & (ratings.c.fit == newest.c.fit))

        def _read(connection: Connection) -> list[M.Rating]:
            rows = connection.execute(query).all()
            return [M.Rating.FromString(r.rating) for r in rows]

        return await self._db.read(_read)

    # -- per-config statistics ------------------------------------------------------------
    async def update_config_stats(self, request: state_pb2.UpdateConfigStatsRequest) -> state_pb2.ConfigStats:
        def _write(connection: Connection) -> state_pb2.ConfigStats:
            lock_and_fence(connection, request.epoch)
            row = connection.execute(
                select(config_stats.c.stats).where(config_stats.c.config_key == request.config_key)
            ).first()
            stats = (
                state_pb2.ConfigStats.FromString(row.stats)
                if row
                else state_pb2.ConfigStats(config_key=request.config_key)
            )
            if request.idempotency_key and not _first_time(connection, f"stats:{request.idempotency_key}"):
                return stats
            now = _stamp()
            stats.games_total += request.add_games
            stats.games_since_training += request.add_games
            if request.add_games and request.add_cpu_seconds > 0:  # games whose cost is known
                stats.selfplay_cpu_seconds += request.add_cpu_seconds
                stats.selfplay_games_timed += request.add_games
                stats.cpu_seconds_per_game = stats.selfplay_cpu_seconds / stats.selfplay_games_timed
            if request.mark_dispatch:
                stats.last_dispatch.CopyFrom(now)
            if request.mark_training_started:
                stats.last_training_started.CopyFrom(now)
                stats.games_since_training = 0
            if request.mark_training_completed:
                stats.last_training_completed.CopyFrom(now)
            values = dict(stats=stats.SerializeToString())
            if row:
                connection.execute(
                    update(config_stats).where(config_stats.c.config_key == request.config_key).values(**values)
                )
            else:
                connection.execute(config_stats.insert().values(config_key=request.config_key, **values))
            return stats

        return await self._db.write(_write)

    async def list_config_stats(self) -> list[state_pb2.ConfigStats]:
        def _read(connection: Connection) -> list[state_pb2.ConfigStats]:
            rows = connection.execute(select(config_stats.c.stats).order_by(config_stats.c.config_key))
            return [state_pb2.ConfigStats.FromString(r.stats) for r in rows]

        return await self._db.read(_read)

    # -- sync transfers ---------------------------------------------------------------------
    async def record_transfers(self, transfers: list[state_pb2.SyncTransfer], epoch: int) -> int:
        def _write(connection: Connection) -> int:
            lock_and_fence(connection, epoch)
            ids = [t.transfer_id for t in transfers]
            known = {
                r.transfer_id
                for r in connection.execute(
                    select(sync_transfers.c.transfer_id).where(sync_transfers.c.transfer_id.in_(ids))
                )
            }
            now = utc_now()
            for transfer in transfers:
                stored = state_pb2.SyncTransfer()
                stored.CopyFrom(transfer)
                stored.updated_at.CopyFrom(_stamp(now))
                values = dict(
                    plan_id=transfer.plan_id, state=transfer.state, updated_at=now, transfer=stored.SerializeToString()
                )
                if transfer.transfer_id in known:
                    connection.execute(
                        update(sync_transfers)
                        .where(sync_transfers.c.transfer_id == transfer.transfer_id)
                        .values(**values)
                    )
                else:
                    connection.execute(sync_transfers.insert().values(transfer_id=transfer.transfer_id, **values))
            return len(transfers)

        return await self._db.write(_write)

    async def list_transfers(self, plan_id: str, states: list[int], limit: int, after: str):
        query = (
            select(sync_transfers.c.transfer_id, sync_transfers.c.transfer)
            .order_by(sync_transfers.c.transfer_id)
            .limit(limit)
        )
        if plan_id:
            query = query.where(sync_transfers.c.plan_id == plan_id)
        if states:
            query = query.where(sync_transfers.c.state.in_(states))
        if after:
            query = query.where(sync_transfers.c.transfer_id > after)

        def _read(connection: Connection) -> tuple[list[state_pb2.SyncTransfer], str]:
            rows = connection.execute(query).all()
            found = [state_pb2.SyncTransfer.FromString(r.transfer) for r in rows]
            return found, (found[-1].transfer_id if len(found) == limit else "")

        return await self._db.read(_read)


def _fall_back(connection: Connection, model: M.Model) -> str:
    """When the config's best is archived or rejected, the best pointer moves to the newest
    other promoted model of the config (self-play keeps its strongest player instead of
    going back to generation 0); with none left the config has no best. The new best's
    id, or "" when the model was not the best."""
    current = connection.execute(
        select(best_models.c.model_id).where(best_models.c.config_key == model.config_key)
    ).first()
    if current is None or current.model_id != model.model_id:
        return ""
    rows = connection.execute(
        select(models.c.model_id, models.c.model).where(
            (models.c.config_key == model.config_key)
            & (models.c.status == M.MODEL_STATUS_PROMOTED)
            & (models.c.model_id != model.model_id)
        )
    )
    others = [M.Model.FromString(r.model) for r in rows]
    if not others:
        connection.execute(delete(best_models).where(best_models.c.config_key == model.config_key))
        return "none"
    newest = max(others, key=lambda m: (m.generation, m.created_at.seconds, m.model_id))
    connection.execute(
        update(best_models).where(best_models.c.config_key == model.config_key).values(model_id=newest.model_id)
    )
    return newest.model_id
