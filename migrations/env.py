"""Alembic environment: the URL comes from the caller (llmproxy.migrate) or DATABASE_URL."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine

from llmproxy.config import default_database_url, normalize_database_url
from llmproxy.storage import rollups  # noqa: F401 - its tables belong to Base.metadata
from llmproxy.storage.models import Base

config = context.config
url = config.attributes.get("url") or normalize_database_url(os.environ.get("DATABASE_URL") or default_database_url())


def run_migrations_online() -> None:
    """Migrate over a live connection (given by the caller, or made from the URL)."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(url)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


def _run(connection) -> None:
    context.configure(
        connection=connection, target_metadata=Base.metadata, render_as_batch=connection.dialect.name == "sqlite"
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    context.configure(url=url, target_metadata=Base.metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
