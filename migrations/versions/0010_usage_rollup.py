"""The usage rollup (`usage_rollup`, `error_rollup`): the ledger summed per minute and hour, per key, model and
provider, and failed jobs per error code; kept up to date by the writer (llmproxy.billing.rollup). What was
billed before is summed by `python -m llmproxy setup` (an empty rollup beside a ledger with rows is filled),
not here, so this migration never depends on code that may change after it.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

from llmproxy.storage.money import Money

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_KEY = ("granularity", "bucket", "api_key_id", "model")


def _id() -> sa.Column:
    return sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)


def upgrade() -> None:
    op.create_table(
        "usage_rollup",
        _id(),
        sa.Column("granularity", sa.String(1), nullable=False),
        sa.Column("bucket", sa.DateTime(timezone=True), nullable=False),
        sa.Column("api_key_id", sa.String(40), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_usd", Money(), nullable=False),
        sa.Column("latency_ms_sum", sa.BigInteger(), nullable=False),
        *(sa.Column(f"lat_{i}", sa.BigInteger(), nullable=False) for i in range(10)),
        sa.UniqueConstraint(*_KEY, "provider", name="uq_usage_rollup"),
    )
    op.create_index("ix_usage_rollup_bucket", "usage_rollup", ["granularity", "bucket"])
    op.create_table(
        "error_rollup",
        _id(),
        sa.Column("granularity", sa.String(1), nullable=False),
        sa.Column("bucket", sa.DateTime(timezone=True), nullable=False),
        sa.Column("api_key_id", sa.String(40), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.UniqueConstraint(*_KEY, "code", name="uq_error_rollup"),
    )
    op.create_index("ix_error_rollup_bucket", "error_rollup", ["granularity", "bucket"])


def downgrade() -> None:
    op.drop_index("ix_error_rollup_bucket", table_name="error_rollup")
    op.drop_table("error_rollup")
    op.drop_index("ix_usage_rollup_bucket", table_name="usage_rollup")
    op.drop_table("usage_rollup")
