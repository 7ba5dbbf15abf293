"""CLI commands for the database (migrations, default rows) and for re-encrypting stored keys."""

from __future__ import annotations

import click
from sqlalchemy.orm import Session

from llmproxy.catalog.defaults import seed_defaults
from llmproxy.config import Settings
from llmproxy.devtools.cli.app import Context, main, with_session
from llmproxy.errors import ApiError
from llmproxy.keys.credentials import reencrypt_all
from llmproxy.storage import migrate


@main.group()
def db() -> None:
    """Database migrations and default data."""


@db.command("upgrade")
@click.pass_obj
def db_upgrade(ctx: Context) -> None:
    """Migrate to the newest schema."""
    migrate.upgrade(ctx.settings.database_url)
    click.echo("database is at the newest revision")


@db.command("downgrade")
@click.argument("revision", default="base")
@click.pass_obj
def db_downgrade(ctx: Context, revision: str) -> None:
    """Migrate down to REVISION (default: empty)."""
    migrate.downgrade(ctx.settings.database_url, revision)


@db.command("seed")
@with_session
def db_seed(session: Session, _settings: Settings) -> None:
    """Insert the default providers and models that are missing."""
    click.echo(f"added {seed_defaults(session)} default rows")


@main.command("rotate-encryption-key")
@click.option(
    "--new-key",
    envvar="NEW_ENCRYPTION_KEY",
    required=True,
    help="64 hex chars (or NEW_ENCRYPTION_KEY); the current key is ENCRYPTION_KEY.",
)
@with_session
def rotate_encryption_key(session: Session, settings: Settings, new_key: str) -> None:
    """Re-encrypt every stored provider key under a new ENCRYPTION_KEY, in one transaction."""
    try:
        new = bytes.fromhex(new_key)
    except ValueError:
        new = b""
    if len(new) != 32:
        raise ApiError(400, "--new-key must be 64 hex characters")
    count = reencrypt_all(session, old_key=settings.encryption_key, new_key=new)
    click.echo(f"re-encrypted {count} stored keys; now set ENCRYPTION_KEY to the new key and restart")
