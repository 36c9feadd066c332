"""What StateService checks in the state it loaded at start (BEHAVIOUR.md): jobs active
for longer than a day, and jobs on nodes never seen. Findings become STATE_WARNING
events (once each); nothing is changed or dropped."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.engine import Connection

from ringrift.common.v1 import common_pb2
from ringrift_contracts.jobs import ON_NODE as ACTIVE
from ringrift_runtime.db import Database
from ringrift_state.adapters.sql import append_event_row, lock_and_fence
from ringrift_state.adapters.tables import jobs, nodes_seen
from ringrift_state.domain.model import NewEvent

log = logging.getLogger("ringrift.state")
STALE_AFTER = timedelta(hours=24)


async def check_loaded_state(db: Database) -> int:
    """Publish a STATE_WARNING for each suspicious job; returns how many were found."""
    return await db.write(_check)


def _check(connection: Connection) -> int:
    cutoff = datetime.now(UTC) - STALE_AFTER
    active = [int(s) for s in ACTIVE]
    lock_and_fence(connection, 0)
    seen = {row.node_id for row in connection.execute(select(nodes_seen.c.node_id))}
    rows = (
        connection.execute(
            select(jobs.c.job_id, jobs.c.node_id, jobs.c.updated_at, jobs.c.config_key).where(jobs.c.state.in_(active))
        )
    ).all()
    findings = 0
    for row in rows:
        updated = row.updated_at if row.updated_at.tzinfo else row.updated_at.replace(tzinfo=UTC)
        problems = []
        if updated < cutoff:
            problems.append(("stale-job", f"active since {updated.isoformat()} (over 24 h)"))
        if seen and row.node_id and row.node_id not in seen:
            problems.append(("unknown-node", f"runs on node {row.node_id}, never seen"))
        for kind, detail in problems:
            findings += 1
            log.warning("loaded state: job %s %s", row.job_id, detail)
            append_event_row(
                connection,
                NewEvent(
                    type=common_pb2.EVENT_TYPE_STATE_WARNING,
                    source="state",
                    subject=row.job_id,
                    config_key=row.config_key,
                    attributes={"check": kind, "detail": detail},
                    idempotency_key=f"state-warning/{kind}/{row.job_id}",
                ),
            )
    return findings
