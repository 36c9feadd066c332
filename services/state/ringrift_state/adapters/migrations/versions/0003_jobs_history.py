"""History of archived (terminal, old) jobs.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "jobs_history",
        sa.Column("job_id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("config_key", sa.String(64), nullable=False),
        sa.Column("state", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=False),
        # The whole job with its attempts, as the serialized ringrift.common.v1.Job.
        sa.Column("job", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("jobs_history")
