"""Table definitions used by the queries. The schema itself is created by the Alembic
migrations in ./migrations; a test checks that both agree."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Integer, LargeBinary, MetaData, String, Table, Text

metadata = MetaData()

# One row (id = 1): the highest epoch persisted.
cluster = Table(
    "cluster",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("epoch", BigInteger, nullable=False),
    Column("leader_id", String(256), nullable=False),
    Column("advanced_at", DateTime(timezone=True)),
)

# Named counters; "event_sequence" hands out event sequence numbers under a row lock,
# so sequences commit in order and a rolled-back append leaves no gap.
counters = Table(
    "counters",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("sequence", BigInteger, primary_key=True, autoincrement=False),
    Column("type", Integer, nullable=False),
    Column("time", DateTime(timezone=True), nullable=False),
    Column("source", String(256), nullable=False),
    Column("subject", String(256), nullable=False),
    Column("config_key", String(64), nullable=False),
    Column("attributes", Text, nullable=False),
    Column("epoch", BigInteger, nullable=False),
    Column("idempotency_key", String(256), nullable=True, unique=True),
)

state_values = Table(
    "state_values",
    metadata,
    Column("namespace", String(128), primary_key=True),
    Column("key", String(256), primary_key=True),
    Column("value", LargeBinary, nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
