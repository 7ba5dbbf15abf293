"""Run Alembic migrations from code (the CLI, `make run`, the tests)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from llmproxy.config import ROOT


def alembic_config(url: str) -> Config:
    """An Alembic config pointing at migrations/ and the given database."""
    cfg = Config(str(ROOT / "migrations" / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    cfg.attributes["url"] = url
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database up to `revision`."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    """Migrate the database down to `revision`."""
    command.downgrade(alembic_config(url), revision)
