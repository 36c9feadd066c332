"""The CPU seconds each job attempt used, as its agent measured them (0: unknown); an
index on when jobs were archived (history is deleted past its window).

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("job_attempts") as batch:
        batch.add_column(sa.Column("cpu_seconds", sa.Float(), nullable=False, server_default="0"))
    op.create_index("ix_jobs_history_archived_at", "jobs_history", ["archived_at"])


def downgrade() -> None:
    op.drop_index("ix_jobs_history_archived_at", table_name="jobs_history")
    with op.batch_alter_table("job_attempts") as batch:
        batch.drop_column("cpu_seconds")
