"""Models get a cache-write price; the ledger records cache writes and that price.

- `models.cache_write_cost_per_1m`: USD per 1M prompt tokens written to the provider's prompt cache
  (Anthropic's cache creation, 1.25× input for the 5-minute cache); NULL: the input price.
- `usage_ledger.cache_write_tokens` (0 for older rows) and `usage_ledger.cache_write_cost_per_1m`: what
  a job's bill needs to be recomputed when it wrote to the cache.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

from llmproxy.storage.money import Money

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cache_write_cost_per_1m", Money(), nullable=True))
    with op.batch_alter_table("usage_ledger", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cache_write_tokens", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("cache_write_cost_per_1m", Money(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("usage_ledger", schema=None) as batch_op:
        batch_op.drop_column("cache_write_cost_per_1m")
        batch_op.drop_column("cache_write_tokens")
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.drop_column("cache_write_cost_per_1m")
