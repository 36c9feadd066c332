"""The election key the current epoch was issued to (ClaimEpoch is idempotent per key).

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cluster") as batch:
        batch.add_column(sa.Column("leader_key", sa.String(256), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("cluster") as batch:
        batch.drop_column("leader_key")
