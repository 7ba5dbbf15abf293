"""What the dashboard shows, read from the usage rollup (llmproxy.storage.rollups), never from the ledger: the
overview of a recent range (per-bucket series, spend per day, tokens by model, latency percentiles, errors by
code) and usage tables by key, model, provider or day over whole UTC days.

Ranges start on a bucket boundary, so these sums equal /admin/usage's over the same window exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from llmproxy.billing.rollup import bucket_of
from llmproxy.storage.models import ApiKey
from llmproxy.storage.money import money
from llmproxy.storage.rollups import HOUR, LATENCY_BOUNDS_MS, LATENCY_BUCKETS, MINUTE, ErrorRollup, UsageRollup

RANGES: dict[str, tuple[timedelta, str]] = {
    "24h": (timedelta(hours=24), MINUTE),
    "7d": (timedelta(days=7), HOUR),
    "30d": (timedelta(days=30), HOUR),
}
GROUPS = ("key", "model", "provider", "day")
R = UsageRollup


@dataclass(frozen=True)
class Window:
    """A range's first bucket (inclusive) and the granularity its rows have."""

    since: datetime
    granularity: str


def window(name: str, now: datetime | None = None) -> Window:
    """The window of a named range ending now (its start on a bucket boundary)."""
    span, granularity = RANGES[name]
    start = bucket_of((now or datetime.now(UTC)) - span, granularity)
    return Window(start, granularity)


def percentile_bound(counts: list[int], q: float) -> int | None:
    """The histogram's upper bound (ms) holding the q-th percentile (None when empty; -1: above the last bound)."""
    total = sum(counts)
    if not total:
        return None
    seen = 0
    for bound, count in zip((*LATENCY_BOUNDS_MS, -1), counts, strict=True):
        seen += count
        if seen >= q / 100 * total:
            return bound
    return -1


def overview(session: Session, name: str, now: datetime | None = None) -> dict[str, Any]:
    """Everything the overview charts draw for the range `name` (24h, 7d or 30d)."""
    win = window(name, now)
    in_range = (R.granularity == win.granularity, R.bucket >= win.since)
    series = session.execute(
        select(R.bucket, func.sum(R.requests), func.sum(R.cost_usd), func.sum(R.prompt_tokens + R.completion_tokens))
        .where(*in_range)
        .group_by(R.bucket)
        .order_by(R.bucket)
    ).all()
    per_day: dict[str, Decimal] = {}
    for bucket, _requests, cost, _tokens in series:
        day = _utc(bucket).date().isoformat()
        per_day[day] = per_day.get(day, Decimal(0)) + Decimal(cost or 0)
    by_model = session.execute(
        select(R.model, func.sum(R.prompt_tokens), func.sum(R.completion_tokens))
        .where(*in_range)
        .group_by(R.model)
        .order_by(R.model)
    ).all()
    histogram = session.execute(select(*(func.sum(getattr(R, b)) for b in LATENCY_BUCKETS)).where(*in_range)).one()
    counts = [int(c or 0) for c in histogram]
    errors = session.execute(
        select(ErrorRollup.code, func.sum(ErrorRollup.count))
        .where(ErrorRollup.granularity == win.granularity, ErrorRollup.bucket >= win.since)
        .group_by(ErrorRollup.code)
        .order_by(func.sum(ErrorRollup.count).desc(), ErrorRollup.code)
    ).all()
    minutes = 1 if win.granularity == MINUTE else 60
    step = 60 * minutes
    start, end = int(win.since.timestamp()), int(bucket_of(now or datetime.now(UTC), win.granularity).timestamp())
    counted = {int(_utc(b).timestamp()): (int(n or 0), int(t or 0)) for b, n, _, t in series}
    ticks = list(range(start, end + 1, step))  # every bucket of the range, the quiet ones as zeros
    return {
        "range": name,
        "since": win.since.isoformat(),
        "until": end + step,
        "granularity": win.granularity,
        "series": {
            "t": ticks,
            "requests_per_minute": [round(counted.get(t, (0, 0))[0] / minutes, 3) for t in ticks],
            "tokens": [counted.get(t, (0, 0))[1] for t in ticks],
        },
        "spend_per_day": [{"day": day, "cost_usd": money(cost)} for day, cost in sorted(per_day.items())],
        "tokens_by_model": [
            {"model": m, "prompt_tokens": int(p or 0), "completion_tokens": int(c or 0)} for m, p, c in by_model
        ],
        "latency": {"p50_ms": percentile_bound(counts, 50), "p95_ms": percentile_bound(counts, 95), "counts": counts},
        "errors_by_code": [{"code": code, "count": int(n or 0)} for code, n in errors],
        "totals": {
            "requests": sum(int(n or 0) for _, n, _, _ in series),
            "cost_usd": money(sum((Decimal(c or 0) for _, _, c, _ in series), Decimal(0))),
        },
    }


def usage_table(session: Session, group_by: str, first_day: date, last_day: date) -> list[dict[str, Any]]:
    """Totals per group over whole UTC days [first_day, last_day], as /admin/usage gives them for that window."""
    since = datetime(first_day.year, first_day.month, first_day.day, tzinfo=UTC)
    until = datetime(last_day.year, last_day.month, last_day.day, tzinfo=UTC) + timedelta(days=1)
    totals = (func.sum(R.requests), func.sum(R.prompt_tokens), func.sum(R.completion_tokens), func.sum(R.cost_usd))
    where = (R.granularity == HOUR, R.bucket >= since, R.bucket < until)
    if group_by == "day":
        rows: dict[str, list[Any]] = {}
        for bucket, n, p, c, cost in session.execute(select(R.bucket, *totals).where(*where).group_by(R.bucket)):
            day = _utc(bucket).date().isoformat()
            sums = rows.setdefault(day, [0, 0, 0, Decimal(0)])
            for i, value in enumerate((n, p, c, Decimal(cost or 0))):
                sums[i] += value or 0
        return [_row(day, *sums) for day, sums in sorted(rows.items())]
    if group_by == "key":
        query = select(R.api_key_id, ApiKey.name, *totals).join(ApiKey, ApiKey.id == R.api_key_id)
        grouped = query.where(*where).group_by(R.api_key_id, ApiKey.name).order_by(R.api_key_id)
        return [{**_row(key, n, p, c, cost), "name": name} for key, name, n, p, c, cost in session.execute(grouped)]
    column = R.model if group_by == "model" else R.provider
    by_column = select(column, *totals).where(*where).group_by(column).order_by(column)
    return [_row(group or None, n, p, c, cost) for group, n, p, c, cost in session.execute(by_column)]


def _row(group: Any, requests: Any, prompt: Any, completion: Any, cost: Any) -> dict[str, Any]:
    return {
        "group": group,
        "requests": int(requests or 0),
        "prompt_tokens": int(prompt or 0),
        "completion_tokens": int(completion or 0),
        "cost_usd": money(Decimal(cost or 0)),
    }


def _utc(moment: datetime) -> datetime:
    """A bucket as an aware UTC time (SQLite gives it back naive)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
