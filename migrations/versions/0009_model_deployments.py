"""A model has deployments: each a provider (its api_base and key unless overridden), an upstream model and a weight.

- `deployments`: one row per existing model, from its `provider_id` and `upstream_model`, which then leave `models`
  (a model's provider and upstream model are its first deployment's).
- `usage_ledger.deployment_id`: which deployment served a billed job (no foreign key: the ledger outlives it).

Downgrade puts each model's first deployment back into `models` (a model without deployments cannot go back).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_models = sa.table(
    "models",
    sa.column("id", sa.Integer),
    sa.column("provider_id", sa.Integer),
    sa.column("upstream_model", sa.String),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("updated_at", sa.DateTime(timezone=True)),
)
_deployments = sa.table(
    "deployments",
    sa.column("id", sa.Integer),
    sa.column("model_id", sa.Integer),
    sa.column("provider_id", sa.Integer),
    sa.column("upstream_model", sa.String),
    sa.column("weight", sa.Integer),
    sa.column("enabled", sa.Boolean),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("updated_at", sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    op.create_table(
        "deployments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("provider_id", sa.Integer(), nullable=False),
        sa.Column("api_base", sa.String(length=512), nullable=True),
        sa.Column("api_key_enc", sa.Text(), nullable=True),
        sa.Column("upstream_model", sa.String(length=128), nullable=False),
        sa.Column("weight", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("rpm_limit", sa.Integer(), nullable=True),
        sa.Column("tpm_limit", sa.Integer(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["model_id"], ["models.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["provider_id"], ["providers.id"], ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id"),
        # Ids are never reused (SQLite reuses a deleted row's by default): the ledger and health in Redis name them.
        sqlite_autoincrement=True,
    )
    op.create_index("ix_deployments_model_id", "deployments", ["model_id"])
    op.execute(
        _deployments.insert().from_select(
            ["model_id", "provider_id", "upstream_model", "weight", "enabled", "created_at", "updated_at"],
            sa.select(
                _models.c.id,
                _models.c.provider_id,
                _models.c.upstream_model,
                sa.literal(1),
                sa.true(),
                _models.c.created_at,
                _models.c.updated_at,
            ).order_by(_models.c.id),
        )
    )
    # SQLite rebuilds `models` here; migrations run without its foreign-key pragma, so no cascade reaches deployments.
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.drop_column("provider_id")
        batch_op.drop_column("upstream_model")
    with op.batch_alter_table("usage_ledger", schema=None) as batch_op:
        batch_op.add_column(sa.Column("deployment_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("usage_ledger", schema=None) as batch_op:
        batch_op.drop_column("deployment_id")
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.add_column(sa.Column("provider_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("upstream_model", sa.String(length=128), nullable=True))
    for column in ("provider_id", "upstream_model"):
        op.execute(
            f"UPDATE models SET {column} = (SELECT d.{column} FROM deployments d "
            "WHERE d.model_id = models.id ORDER BY d.id LIMIT 1)"
        )
    op.drop_index("ix_deployments_model_id", table_name="deployments")
    op.drop_table("deployments")
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.alter_column("provider_id", existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column("upstream_model", existing_type=sa.String(length=128), nullable=False)
        batch_op.create_foreign_key(
            "models_provider_id_fkey", "providers", ["provider_id"], ["id"], ondelete="RESTRICT"
        )
