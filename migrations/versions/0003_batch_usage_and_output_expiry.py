"""Batches keep their token usage and their output files' lifetime.

- `batches.usage`: OpenAI's batch `usage` object, fixed when the batch ends (live from the ledger before).
- `batches.output_expires_seconds`: `output_expires_after.seconds` of the create request; the output and
  error files expire that long after they are written (else after RETENTION_DAYS).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("usage", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("output_expires_seconds", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.drop_column("output_expires_seconds")
        batch_op.drop_column("usage")
