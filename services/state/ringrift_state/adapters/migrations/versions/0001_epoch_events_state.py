"""Cluster epoch, event log, counters and versioned state values.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    cluster = op.create_table(
        "cluster",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("epoch", sa.BigInteger, nullable=False),
        sa.Column("leader_id", sa.String(256), nullable=False),
        sa.Column("advanced_at", sa.DateTime(timezone=True)),
    )
    counters = op.create_table(
        "counters",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "events",
        sa.Column("sequence", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("type", sa.Integer, nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(256), nullable=False),
        sa.Column("subject", sa.String(256), nullable=False),
        sa.Column("config_key", sa.String(64), nullable=False),
        sa.Column("attributes", sa.Text, nullable=False),
        sa.Column("epoch", sa.BigInteger, nullable=False),
        sa.Column("idempotency_key", sa.String(256), nullable=True, unique=True),
    )
    op.create_index("ix_events_type_sequence", "events", ["type", "sequence"])
    op.create_table(
        "state_values",
        sa.Column("namespace", sa.String(128), primary_key=True),
        sa.Column("key", sa.String(256), primary_key=True),
        sa.Column("value", sa.LargeBinary, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.bulk_insert(cluster, [{"id": 1, "epoch": 0, "leader_id": "", "advanced_at": None}])
    op.bulk_insert(counters, [{"name": "event_sequence", "value": 0}])


def downgrade() -> None:
    for table in ("state_values", "events", "counters", "cluster"):
        op.drop_table(table)
