"""Migrations go up from empty and back down, on SQLite and on PostgreSQL when TEST_DATABASE_URL points at it."""

from sqlalchemy import create_engine, inspect

from llmproxy.storage import migrate
from tests.support.databases import needs_postgresql, scratch_postgresql

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


@needs_postgresql
def test_postgresql_up_down_up():
    with scratch_postgresql() as url:
        _round_trip(url)


def test_migrations_match_the_models(tmp_path):
    """Every model change comes with its migration: autogenerate finds nothing left to do."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from llmproxy.storage import rollups  # noqa: F401 - its tables belong to Base.metadata
    from llmproxy.storage.models import Base

    url = f"sqlite:///{tmp_path}/m.db"
    migrate.upgrade(url)
    engine = create_engine(url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": False}), Base.metadata)
    engine.dispose()
    assert diff == []
