"""What dispatch reads of a large backlog, by index: whether a job needs a GPU as a
column (per-node counts of jobs and GPU jobs are one GROUP BY, not a listing of every
active job), an index that holds the pending jobs in the order dispatch takes them
(priority high to low, then oldest: the head of a 100,000-job backlog is read without
sorting it), and one on (state, node_id, needs_gpu) that answers the per-node counts by
itself. Jobs not yet ended are filled in from their stored spec.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

from ringrift.common.v1 import common_pb2

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# PENDING, SCHEDULED, STARTING, RUNNING (the job states a GPU count can concern).
UNFINISHED = (1, 2, 3, 4)


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("needs_gpu", sa.Boolean(), nullable=False, server_default=sa.false()))
    jobs = sa.table("jobs", sa.column("job_id", sa.String), sa.column("spec", sa.LargeBinary),
                    sa.column("state", sa.Integer), sa.column("needs_gpu", sa.Boolean))  # fmt: skip
    connection = op.get_bind()
    rows = connection.execute(sa.select(jobs.c.job_id, jobs.c.spec).where(jobs.c.state.in_(UNFINISHED))).fetchall()
    gpu = [row.job_id for row in rows if common_pb2.JobSpec.FromString(row.spec).requirements.needs_gpu]
    for start in range(0, len(gpu), 500):
        connection.execute(jobs.update().where(jobs.c.job_id.in_(gpu[start : start + 500])).values(needs_gpu=True))
    op.create_index("ix_jobs_dispatch_order", "jobs", ["state", sa.text("priority DESC"), "job_id"])
    op.create_index("ix_jobs_state_node_gpu", "jobs", ["state", "node_id", "needs_gpu"])


def downgrade() -> None:
    op.drop_index("ix_jobs_state_node_gpu", table_name="jobs")
    op.drop_index("ix_jobs_dispatch_order", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("needs_gpu")
