"""Migrations go up from empty and back down, on SQLite and on PostgreSQL when TEST_DATABASE_URL points at it."""

import os
import secrets

import pytest
from sqlalchemy import create_engine, inspect, text

from llmproxy.config import normalize_database_url
from llmproxy.storage import migrate

TABLES = {"providers", "models", "api_keys", "key_credentials", "jobs", "usage_ledger", "files", "batches"}


def _round_trip(url):
    migrate.upgrade(url)
    engine = create_engine(url)
    assert set(inspect(engine).get_table_names()) >= TABLES
    migrate.downgrade(url, "base")
    assert not (TABLES & set(inspect(engine).get_table_names()))
    migrate.upgrade(url)
    assert set(inspect(engine).get_table_names()) >= TABLES
    engine.dispose()


def test_sqlite_up_down_up(tmp_path):
    _round_trip(f"sqlite:///{tmp_path}/m.db")


@pytest.mark.skipif(
    not (os.environ.get("TEST_DATABASE_URL") or "").startswith("postgres"), reason="TEST_DATABASE_URL is not PostgreSQL"
)
def test_postgresql_up_down_up():
    base = normalize_database_url(os.environ["TEST_DATABASE_URL"])
    name = f"llmproxy_mig_{secrets.token_hex(4)}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        _round_trip(base.rsplit("/", 1)[0] + "/" + name)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_migrations_match_the_models(tmp_path):
    """Every model change comes with its migration: autogenerate finds nothing left to do."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from llmproxy.storage.models import Base

    url = f"sqlite:///{tmp_path}/m.db"
    migrate.upgrade(url)
    engine = create_engine(url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": False}), Base.metadata)
    engine.dispose()
    assert diff == []
