"""File contents move to chunks; a batch's lines are unique by custom_id.

- `file_chunks` (file_id, seq, data): a file's bytes, at most 1 MiB a row, so that no process holds a
  whole file (uploads are written and downloads, batch inputs and results read a chunk at a time).
  Existing files are moved chunk by chunk inside the database (substr on the blob: no file passes
  through this process whole), then `files.content` is dropped.
- `ux_jobs_batch_custom_id`: unique (batch_id, custom_id) over batch lines (a partial index: jobs of
  no batch are not in it), so a batch validated twice (a worker died mid-validation) never gets a
  line twice.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

CHUNK_BYTES = 1024 * 1024  # llmproxy.batches.file_chunks.CHUNK_BYTES, fixed here as it was at this revision


def upgrade() -> None:
    op.create_table(
        "file_chunks",
        sa.Column("file_id", sa.String(length=40), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["file_id"], ["files.id"]),
        sa.PrimaryKeyConstraint("file_id", "seq"),
    )
    bind = op.get_bind()
    move = sa.text(
        "INSERT INTO file_chunks (file_id, seq, data) "
        "SELECT id, CAST(:seq AS INTEGER), substr(content, CAST(:start AS INTEGER), CAST(:length AS INTEGER)) "
        "FROM files WHERE id = :id"
    )
    for file_id, size in bind.execute(sa.text("SELECT id, bytes FROM files")).all():
        for seq, offset in enumerate(range(0, size, CHUNK_BYTES)):
            bind.execute(move, {"seq": seq, "start": offset + 1, "length": CHUNK_BYTES, "id": file_id})
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.drop_column("content")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index(
            "ux_jobs_batch_custom_id",
            ["batch_id", "custom_id"],
            unique=True,
            postgresql_where=sa.text("batch_id IS NOT NULL"),
            sqlite_where=sa.text("batch_id IS NOT NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ux_jobs_batch_custom_id")
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.add_column(sa.Column("content", sa.LargeBinary(), nullable=True))
    bind = op.get_bind()
    # One file at a time: the old schema holds a file in one value, so one file is in memory here.
    for (file_id,) in bind.execute(sa.text("SELECT id FROM files")).all():
        chunks = bind.execute(
            sa.text("SELECT data FROM file_chunks WHERE file_id = :id ORDER BY seq"), {"id": file_id}
        ).scalars()
        content = b"".join(bytes(chunk) for chunk in chunks)
        bind.execute(
            sa.text("UPDATE files SET content = :content WHERE id = :id").bindparams(
                sa.bindparam("content", type_=sa.LargeBinary())
            ),
            {"content": content, "id": file_id},
        )
    with op.batch_alter_table("files", schema=None) as batch_op:
        batch_op.alter_column("content", existing_type=sa.LargeBinary(), nullable=False)
    op.drop_table("file_chunks")
