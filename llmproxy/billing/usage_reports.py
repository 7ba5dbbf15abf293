"""Usage figures from the ledger: one key's totals and admin reports by key, model, provider, deployment or day.

Sums are computed in SQL over the `Money` column, whose type converts the
result (pico-dollar integers on SQLite, NUMERIC on PostgreSQL) back to an exact
Decimal, so a report adds up to the last decimal of the ledger rows.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Date, Select, SQLColumnExpression, cast, func, select
from sqlalchemy.orm import Session

from llmproxy import json_schema as js
from llmproxy.errors import bad_request
from llmproxy.jsontypes import JSON
from llmproxy.storage.models import ApiKey, UsageEntry
from llmproxy.storage.money import money

# `model` is the model that served (and priced) the request; `model_requested`
# is what the caller asked for, which differs when a fallback served it.
# `deployment` is the id of the deployment that served it (its model and provider beside it).
GROUPS = ("key", "model", "model_requested", "provider", "deployment", "day")

_Query = TypeVar("_Query", bound=Select[*tuple[Any, ...]])


def parse_time(value: str | int | float | None, param: str) -> datetime | None:
    """A bound given as unix seconds or an ISO date/datetime (naive = UTC), as aware UTC; 400 naming `param`."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    text = str(value).strip()
    # Anything float() reads is unix seconds (so '20240101' is not a basic-format date); NaN and
    # infinities fail in fromtimestamp and then in fromisoformat, and so become a 400.
    try:
        try:
            moment = datetime.fromtimestamp(float(text), UTC)
        except ValueError:
            moment = datetime.fromisoformat(text)
    except (ValueError, OverflowError, OSError):
        raise bad_request(f"'{param}' must be unix seconds or an ISO 8601 date or datetime", param=param) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    # SQLite stores datetimes without their offset, so every bound must be in UTC.
    return moment.astimezone(UTC)


def _window(query: _Query, since: datetime | None, until: datetime | None) -> _Query:
    """Restrict to [since, until): half-open, so consecutive windows never count a row twice."""
    if since is not None and until is not None and until <= since:
        raise bad_request("'until' must be later than 'since'", param="until")
    if since is not None:
        query = query.where(UsageEntry.created_at >= since)
    if until is not None:
        query = query.where(UsageEntry.created_at < until)
    return query


def _totals() -> tuple[ColumnElement[int], ColumnElement[int], ColumnElement[int], ColumnElement[Decimal]]:
    return (
        func.count(UsageEntry.id),
        func.sum(UsageEntry.prompt_tokens),
        func.sum(UsageEntry.completion_tokens),
        func.sum(UsageEntry.cost_usd),
    )


def _utc_day(session: Session) -> ColumnElement[Any]:
    """The UTC calendar day of a ledger row, as SQL for this database."""
    if session.get_bind().dialect.name == "postgresql":
        return cast(func.timezone("UTC", UsageEntry.created_at), Date)
    # SQLite keeps UTC datetimes as text, 'YYYY-MM-DD HH:MM:SS.ffffff'.
    return func.date(UsageEntry.created_at)


_COUNT = js.integer(0)
USAGE_ROW_SCHEMA = js.obj(
    {
        "group": js.nullable(js.string()),
        "name": js.string(),  # grouped by key: the key's name
        "model": js.nullable(js.string()),  # grouped by deployment: its model and provider
        "provider": js.nullable(js.string()),
        "requests": _COUNT,
        "prompt_tokens": _COUNT,
        "completion_tokens": _COUNT,
        "cost_usd": js.money(),
    },
    required=["group", "requests", "prompt_tokens", "completion_tokens", "cost_usd"],
    extra=False,
)
KEY_USAGE_SCHEMA = js.record(
    {
        "key": js.record({"id": js.string(), "name": js.string(), "prefix": js.string()}),
        "limits": js.record(
            {"rpm": js.nullable(js.integer(1)), "tpm": js.nullable(js.integer(1)), "budget_usd": js.money()}
        ),
        "spend_usd": js.money(),
        "requests": _COUNT,
        "prompt_tokens": _COUNT,
        "completion_tokens": _COUNT,
    }
)


def _row(group: Any, count: int | None, prompt: int | None, completion: int | None, cost: Decimal | None) -> JSON:
    return {
        "group": group,
        "requests": int(count or 0),
        "prompt_tokens": int(prompt or 0),
        "completion_tokens": int(completion or 0),
        "cost_usd": money(cost if cost is not None else Decimal(0)),
    }


def usage_report(
    session: Session, *, group_by: str, since: datetime | None = None, until: datetime | None = None
) -> list[JSON]:
    """Ledger totals per group over [since, until), ordered by group; 400 on an unknown `group_by`."""
    if group_by not in GROUPS:
        raise bad_request(f"'group_by' must be one of {', '.join(GROUPS)}", param="group_by")
    if group_by == "key":
        query = (
            select(UsageEntry.api_key_id, ApiKey.name, *_totals())
            .join(ApiKey, ApiKey.id == UsageEntry.api_key_id)
            .group_by(UsageEntry.api_key_id, ApiKey.name)
            .order_by(UsageEntry.api_key_id)
        )
        return [
            {**_row(key_id, count, prompt, completion, cost), "name": name}
            for key_id, name, count, prompt, completion, cost in session.execute(_window(query, since, until))
        ]
    if group_by == "deployment":
        # Labelled with the model and provider it served (max(): one per deployment, unless it was repointed).
        by_deployment = (
            select(
                UsageEntry.deployment_id,
                func.max(UsageEntry.model_served),
                func.max(UsageEntry.provider_served),
                *_totals(),
            )
            .group_by(UsageEntry.deployment_id)
            .order_by(UsageEntry.deployment_id)
        )
        return [
            {**_row(None if dep is None else str(dep), count, prompt, completion, cost), "model": m, "provider": p}
            for dep, m, p, count, prompt, completion, cost in session.execute(_window(by_deployment, since, until))
        ]
    columns: dict[str, SQLColumnExpression[Any]] = {
        # A billed row always names its served model; fall back to the request's only for safety.
        "model": func.coalesce(UsageEntry.model_served, UsageEntry.model_requested),
        "model_requested": UsageEntry.model_requested,
        "provider": UsageEntry.provider_served,
        "day": _utc_day(session),
    }
    column: ColumnElement[Any] = columns[group_by].label("grp")
    grouped = select(column, *_totals()).group_by(column).order_by(column)
    return [
        _row(group.isoformat() if isinstance(group, date) else group, count, prompt, completion, cost)
        for group, count, prompt, completion, cost in session.execute(_window(grouped, since, until))
    ]


def key_usage(session: Session, key: ApiKey) -> JSON:
    """One key's identity, limits, spend and ledger totals (requests and tokens of its billed jobs)."""
    count, prompt, completion, _cost = session.execute(select(*_totals()).where(UsageEntry.api_key_id == key.id)).one()
    return {
        "key": {"id": key.id, "name": key.name, "prefix": key.prefix},
        "limits": {"rpm": key.rpm_limit, "tpm": key.tpm_limit, "budget_usd": money(key.budget_usd)},
        # The key's running total: the figure its budget is checked against (kept equal to the
        # ledger's sum by the records writer, llmproxy.jobs.writer, which writes both in one transaction).
        "spend_usd": money(key.spend_usd),
        "requests": int(count or 0),
        "prompt_tokens": int(prompt or 0),
        "completion_tokens": int(completion or 0),
    }
