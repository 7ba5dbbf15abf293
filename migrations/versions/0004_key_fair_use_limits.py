"""Virtual keys get their fair-use limits.

- `api_keys.max_parallel_requests`: the most requests of the key in flight at once (synchronous waits,
  streams and job long-polls together); NULL: the DEFAULT_MAX_PARALLEL_REQUESTS setting.
- `api_keys.max_queued_jobs`: the most async jobs and batch lines of the key not yet ended; NULL: the
  DEFAULT_MAX_QUEUED_JOBS setting.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("max_parallel_requests", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("max_queued_jobs", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_column("max_queued_jobs")
        batch_op.drop_column("max_parallel_requests")
