"""Table definitions used by the queries. The schema itself is created by the Alembic
migrations in ./migrations; a test checks that both agree."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

# One row (id = 1): the highest epoch persisted.
cluster = Table(
    "cluster",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("epoch", BigInteger, nullable=False),
    Column("leader_id", String(256), nullable=False),
    Column("advanced_at", DateTime(timezone=True)),
    Column("leader_key", String(256), nullable=False, server_default=""),
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

jobs = Table(
    "jobs",
    metadata,
    Column("job_id", String(64), primary_key=True),
    Column("kind", String(64), nullable=False),
    Column("config_key", String(64), nullable=False),
    Column("spec", LargeBinary, nullable=False),
    Column("state", Integer, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("node_id", String(64), nullable=False),
    Column("idempotency_key", String(128), nullable=True, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("not_before", DateTime(timezone=True), nullable=True),
    Column("error", Text, nullable=False),
    Column("permanent", Boolean, nullable=False),
    Column("result_json", Text, nullable=False),
    Column("priority", Integer, nullable=False),
    Column("max_attempts", Integer, nullable=False),
    Column("needs_gpu", Boolean, nullable=False),
)

job_attempts = Table(
    "job_attempts",
    metadata,
    Column("job_id", String(64), ForeignKey("jobs.job_id", ondelete="CASCADE"), primary_key=True),
    Column("attempt", Integer, primary_key=True),
    Column("node_id", String(64), nullable=False),
    Column("state", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("exit_code", Integer, nullable=False),
    Column("error", Text, nullable=False),
    Column("cpu_seconds", Float, nullable=False, server_default="0"),
)

jobs_history = Table(
    "jobs_history",
    metadata,
    Column("job_id", String(64), primary_key=True),
    Column("kind", String(64), nullable=False),
    Column("config_key", String(64), nullable=False),
    Column("state", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("archived_at", DateTime(timezone=True), nullable=False),
    Column("job", LargeBinary, nullable=False),
    Index("ix_jobs_history_archived_at", "archived_at"),  # retention deletes by it
)

# Registry tables: the full protobuf message plus the columns queries filter on.
nodes_seen = Table(
    "nodes_seen",
    metadata,
    Column("node_id", String(64), primary_key=True),
    Column("info", LargeBinary, nullable=False),
    Column("first_seen", DateTime(timezone=True), nullable=False),
    Column("last_seen", DateTime(timezone=True), nullable=False),
    Column("alive", Boolean, nullable=False),
)
models = Table(
    "models",
    metadata,
    Column("model_id", String(64), primary_key=True),
    Column("config_key", String(64), nullable=False),
    Column("status", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("model", LargeBinary, nullable=False),
)
best_models = Table(
    "best_models",
    metadata,
    Column("config_key", String(64), primary_key=True),
    Column("model_id", String(64), nullable=False),
)
matches = Table(
    "matches",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("config_key", String(64), nullable=False),
    Column("match", LargeBinary, nullable=False),
)
applied_keys = Table("applied_keys", metadata, Column("key", String(300), primary_key=True))
ratings = Table(
    "ratings",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("config_key", String(64), nullable=False),
    Column("fit", Integer, nullable=False),
    Column("rating", LargeBinary, nullable=False),
)
config_stats = Table(
    "config_stats",
    metadata,
    Column("config_key", String(64), primary_key=True),
    Column("stats", LargeBinary, nullable=False),
)
sync_transfers = Table(
    "sync_transfers",
    metadata,
    Column("transfer_id", String(64), primary_key=True),
    Column("plan_id", String(64), nullable=False),
    Column("state", Integer, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("transfer", LargeBinary, nullable=False),
)
