"""Virtual keys get a file storage quota.

- `api_keys.max_file_storage_bytes`: the most bytes of uploaded, unexpired files (purpose `batch`) the key
  may keep; NULL: the DEFAULT_FILE_STORAGE_BYTES setting; 0: no quota for this key.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("max_file_storage_bytes", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_column("max_file_storage_bytes")
