"""Models have a mode and jobs an operation, so embeddings and chat cannot be confused.

- `models.mode`: "chat" (the default, every existing model) or "embedding".
- `jobs.operation`: the API a job's request is for, "chat" (every existing job) or "embeddings".

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.add_column(sa.Column("mode", sa.String(16), nullable=False, server_default="chat"))
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("operation", sa.String(16), nullable=False, server_default="chat"))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("operation")
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.drop_column("mode")
