"""CLI usage reports and the LiteLLM price import; they share the HTTP API's services and shapes."""

from __future__ import annotations

from typing import TextIO

import click
from sqlalchemy.orm import Session

from llmproxy.billing import usage_reports
from llmproxy.catalog import prices_import
from llmproxy.config import Settings
from llmproxy.devtools.cli.app import emit, main, with_session
from llmproxy.errors import bad_request
from llmproxy.keys import virtual_keys


@main.command("usage")
@click.option(
    "--group-by", type=click.Choice(usage_reports.GROUPS), help="Report over all keys, grouped like /admin/usage."
)
@click.option("--since", help="Unix seconds or ISO date/datetime (UTC unless it has an offset); inclusive.")
@click.option("--until", help="Same forms as --since; exclusive.")
@click.option("--key", "key_id", help="One key's figures, as GET /api/usage shows them.")
@with_session
def usage_command(
    session: Session,
    _settings: Settings,
    group_by: str | None,
    since: str | None,
    until: str | None,
    key_id: str | None,
) -> None:
    """Print usage from the ledger as JSON: grouped rows, or one key's totals."""
    if key_id is not None and group_by is None:
        if since or until:
            raise bad_request("--since/--until apply to --group-by reports only")
        emit(usage_reports.key_usage(session, virtual_keys.get_key(session, key_id)))
    elif group_by is not None and key_id is None:
        emit(
            usage_reports.usage_report(
                session,
                group_by=group_by,
                since=usage_reports.parse_time(since, "since"),
                until=usage_reports.parse_time(until, "until"),
            )
        )
    else:
        raise bad_request("give either --group-by or --key")


@main.group()
def prices() -> None:
    """Model prices."""


@prices.command("import")
@click.argument("file", type=click.File("r", encoding="utf-8"))
@click.option("--add-missing", is_flag=True, help="Also create the file's models that are not configured.")
@click.option("--provider", help="Provider to create missing models under (with --add-missing; must exist).")
@click.option("--litellm-provider", help="Which entries to add: their litellm_provider (default: --provider).")
@click.option("--dry-run", is_flag=True, help="Report what would change; write nothing.")
@with_session
def prices_import_command(
    session: Session,
    _settings: Settings,
    file: TextIO,
    add_missing: bool,
    provider: str | None,
    litellm_provider: str | None,
    dry_run: bool,
) -> None:
    """Update model prices and context windows from LiteLLM's model_prices_and_context_window.json."""
    if litellm_provider and not add_missing:
        raise bad_request("--litellm-provider is only used with --add-missing")
    entries = prices_import.load_prices(file.read())
    emit(
        prices_import.import_prices(
            session,
            entries,
            add_missing=add_missing,
            provider=provider,
            litellm_provider=litellm_provider,
            dry_run=dry_run,
        )
    )
