"""Nodes seen, models and the best pointer, matches, ratings, per-config statistics and
sync transfers.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "nodes_seen",
        sa.Column("node_id", sa.String(64), primary_key=True),
        sa.Column("info", sa.LargeBinary, nullable=False),
        sa.Column("first_seen", TS, nullable=False),
        sa.Column("last_seen", TS, nullable=False),
        sa.Column("alive", sa.Boolean, nullable=False),
    )
    op.create_table(
        "models",
        sa.Column("model_id", sa.String(64), primary_key=True),
        sa.Column("config_key", sa.String(64), nullable=False, index=True),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("model", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "best_models",
        sa.Column("config_key", sa.String(64), primary_key=True),
        sa.Column("model_id", sa.String(64), nullable=False),
    )
    op.create_table(
        "matches",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("config_key", sa.String(64), nullable=False, index=True),
        sa.Column("match", sa.LargeBinary, nullable=False),
    )
    op.create_table("applied_keys", sa.Column("key", sa.String(300), primary_key=True))
    op.create_table(
        "ratings",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("config_key", sa.String(64), nullable=False, index=True),
        sa.Column("fit", sa.Integer, nullable=False),
        sa.Column("rating", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "config_stats",
        sa.Column("config_key", sa.String(64), primary_key=True),
        sa.Column("stats", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "sync_transfers",
        sa.Column("transfer_id", sa.String(64), primary_key=True),
        sa.Column("plan_id", sa.String(64), nullable=False, index=True),
        sa.Column("state", sa.Integer, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("transfer", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "sync_transfers",
        "config_stats",
        "ratings",
        "applied_keys",
        "matches",
        "best_models",
        "models",
        "nodes_seen",
    ):
        op.drop_table(table)
