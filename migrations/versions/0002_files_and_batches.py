"""Files and batches (OpenAI Batch API); jobs.enqueued_at; the ledger outlives its jobs.

- `files`: uploaded batch inputs and batch output/error files, content in the row.
- `batches`: one row per batch; its lines are jobs (jobs.batch_id, jobs.custom_id).
- `jobs.enqueued_at` and index (batch_id, status): finding lost batch lines and counting a batch's lines.
- `usage_ledger.job_id` loses its foreign key (the column and its unique constraint stay): retention
  deletes old jobs, while the ledger is the accounting record and keeps every row with its job id.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# 0001 left the ledger's foreign key unnamed: PostgreSQL named it itself; SQLite's batch mode
# needs a naming convention to find it.
_PG_LEDGER_FK = "usage_ledger_job_id_fkey"
_SQLITE_CONVENTION = {"fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s"}
_SQLITE_LEDGER_FK = "fk_usage_ledger_job_id_jobs"


def upgrade() -> None:
    op.create_table(
        "files",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("api_key_id", sa.String(length=40), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("filename", sa.String(length=512), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["api_key_id"],
            ["api_keys.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.create_index("ix_files_key_created", ["api_key_id", "created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_files_expires_at"), ["expires_at"], unique=False)

    op.create_table(
        "batches",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("api_key_id", sa.String(length=40), nullable=False),
        sa.Column("endpoint", sa.String(length=64), nullable=False),
        sa.Column("input_file_id", sa.String(length=40), nullable=False),
        sa.Column("completion_window", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("errors", sa.JSON(), nullable=True),
        sa.Column("output_file_id", sa.String(length=40), nullable=True),
        sa.Column("error_file_id", sa.String(length=40), nullable=True),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("completed", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("in_progress_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finalizing_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelling_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["api_key_id"],
            ["api_keys.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.create_index("ix_batches_key_created", ["api_key_id", "created_at"], unique=False)
        batch_op.create_index("ix_batches_status_expires", ["status", "expires_at"], unique=False)

    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("enqueued_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_jobs_batch_status", ["batch_id", "status"], unique=False)

    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table("usage_ledger", naming_convention=_SQLITE_CONVENTION) as batch_op:
            batch_op.drop_constraint(_SQLITE_LEDGER_FK, type_="foreignkey")
    else:
        op.drop_constraint(_PG_LEDGER_FK, "usage_ledger", type_="foreignkey")


def downgrade() -> None:
    # Restoring the foreign key needs every ledger row's job; rows whose job retention deleted
    # make this fail on PostgreSQL, on purpose: accounting rows are never dropped silently.
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table("usage_ledger", naming_convention=_SQLITE_CONVENTION) as batch_op:
            batch_op.create_foreign_key(_SQLITE_LEDGER_FK, "jobs", ["job_id"], ["id"])
    else:
        op.create_foreign_key(_PG_LEDGER_FK, "usage_ledger", "jobs", ["job_id"], ["id"])

    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_batch_status")
        batch_op.drop_column("enqueued_at")

    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.drop_index("ix_batches_status_expires")
        batch_op.drop_index("ix_batches_key_created")
    op.drop_table("batches")

    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_files_expires_at"))
        batch_op.drop_index("ix_files_key_created")
    op.drop_table("files")
