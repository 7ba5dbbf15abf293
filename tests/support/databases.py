"""Databases a test makes for itself: a scratch PostgreSQL database, and a lock that holds a writer back."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from llmproxy.config import normalize_database_url

# For tests that need PostgreSQL itself (the suite runs on SQLite too).
needs_postgresql = pytest.mark.skipif(
    not (os.environ.get("TEST_DATABASE_URL") or "").startswith("postgres"), reason="TEST_DATABASE_URL is not PostgreSQL"
)


@contextmanager
def scratch_postgresql() -> Iterator[str]:
    """The URL of a new, empty database on the test server, dropped afterwards."""
    base = normalize_database_url(os.environ["TEST_DATABASE_URL"])
    name = f"llmproxy_mig_{secrets.token_hex(4)}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


class RowLock:
    """Holds one row (PostgreSQL) or the whole database (SQLite), so another process's transaction waits."""

    def __init__(self, db: sessionmaker[Session], model: Any, row_id: str) -> None:
        session = db()
        if session.get_bind().dialect.name == "sqlite":
            session.execute(text("BEGIN IMMEDIATE"))
        else:
            session.execute(select(model).where(model.id == row_id).with_for_update())
        self.session: Session | None = session

    def release(self) -> None:
        """Let the waiting transaction through (idempotent)."""
        if self.session is not None:
            self.session.rollback()
            self.session.close()
            self.session = None
