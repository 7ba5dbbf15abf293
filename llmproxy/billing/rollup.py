"""Keeping the usage rollup (llmproxy.storage.rollups): the writer adds each new ledger row and each newly failed
job to its minute and its hour, in the transaction that stores them, so the rollup sums exactly what the
ledger holds (a replayed record bills nothing new and adds nothing either).

`rebuild` sums a whole ledger (and the failed jobs) again: `python -m llmproxy setup` runs it when the rollup
is empty beside a ledger with rows (an upgrade from before the rollup), and it repairs a rollup by hand.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Connection, Table, delete, exists, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from llmproxy.billing.ledger import Charge
from llmproxy.storage.models import Job, UsageEntry
from llmproxy.storage.rollups import (
    HOUR,
    LATENCY_BOUNDS_MS,
    LATENCY_BUCKETS,
    MINUTE,
    MINUTE_ROLLUP_DAYS,
    ErrorRollup,
    UsageRollup,
)

USAGE, ERRORS = cast(Table, UsageRollup.__table__), cast(Table, ErrorRollup.__table__)
_USAGE_KEY = ("granularity", "bucket", "api_key_id", "model", "provider")
_ERROR_KEY = ("granularity", "bucket", "api_key_id", "model", "code")
_SUMS = ("requests", "prompt_tokens", "completion_tokens", "cost_usd", "latency_ms_sum", *LATENCY_BUCKETS)


def bucket_of(moment: datetime, granularity: str) -> datetime:
    """The start of the UTC minute (m) or hour (h) holding `moment` (a naive time is taken as UTC)."""
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    moment = moment.replace(second=0, microsecond=0)
    return moment.replace(minute=0) if granularity == HOUR else moment


def latency_bucket(latency_ms: int | None) -> str | None:
    """The histogram column a latency falls in (None: no latency recorded)."""
    return None if latency_ms is None else LATENCY_BUCKETS[bisect_left(LATENCY_BOUNDS_MS, latency_ms)]


@dataclass
class _Sums:
    values: dict[str, Any] = field(default_factory=lambda: dict.fromkeys(_SUMS, 0))

    def add(self, prompt: int, completion: int, cost: Decimal, latency_ms: int | None) -> None:
        v = self.values
        v["requests"] += 1
        v["prompt_tokens"] += prompt
        v["completion_tokens"] += completion
        v["cost_usd"] += cost
        column = latency_bucket(latency_ms)
        if column is not None:
            v["latency_ms_sum"] += latency_ms or 0
            v[column] += 1


def _usage_rows(
    entries: Iterable[tuple[datetime, str, str, str, int, int, Decimal, int | None]],
    minutes_since: datetime | None = None,
) -> list[dict[str, Any]]:
    """Sums per minute and hour of these ledger rows (minutes only from `minutes_since` on, when given)."""
    sums: dict[tuple[str, datetime, str, str, str], _Sums] = {}
    for at, key_id, model, provider, prompt, completion, cost, latency in entries:
        recent = minutes_since is None or bucket_of(at, MINUTE) >= minutes_since
        for granularity in (MINUTE, HOUR) if recent else (HOUR,):
            group = (granularity, bucket_of(at, granularity), key_id, model, provider)
            sums.setdefault(group, _Sums()).add(prompt, completion, cost, latency)
    return [{**dict(zip(_USAGE_KEY, group, strict=True)), **s.values} for group, s in sums.items()]


def _error_rows(failures: Iterable[tuple[datetime, str, str, str]]) -> list[dict[str, Any]]:
    counts: dict[tuple[str, datetime, str, str, str], int] = {}
    for at, key_id, model, code in failures:
        for granularity in (MINUTE, HOUR):
            group = (granularity, bucket_of(at, granularity), key_id, model, code)
            counts[group] = counts.get(group, 0) + 1
    return [{**dict(zip(_ERROR_KEY, group, strict=True)), "count": n} for group, n in counts.items()]


def _upsert(conn: Connection, table: Table, key: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
    """Insert each row, or add its sums to the row its key already has (one statement, many rows)."""
    if not rows:
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table)
    sums = [c for c in rows[0] if c not in key]
    statement = statement.on_conflict_do_update(
        index_elements=list(key), set_={c: table.c[c] + statement.excluded[c] for c in sums}
    )
    # Sorted, so two writers touching the same buckets lock them in the same order (no deadlock).
    conn.execute(statement, sorted(rows, key=lambda r: tuple(str(r[k]) for k in key)))


def add_charges(conn: Connection, charges: list[Charge]) -> None:
    """Add new ledger rows (their charges) to their minutes and hours, in the caller's transaction."""
    _upsert(
        conn,
        USAGE,
        _USAGE_KEY,
        _usage_rows(
            (
                c.created_at,
                c.api_key_id,
                c.model_served or c.model_requested,
                c.provider_served or "",
                c.usage.prompt_tokens,
                c.usage.completion_tokens,
                c.cost_usd,
                c.latency_ms,
            )
            for c in charges
        ),
    )


def add_failures(conn: Connection, failures: list[tuple[datetime, str, str, str]]) -> None:
    """Count newly failed jobs, (ended at, key id, requested model, error code), in the caller's transaction."""
    _upsert(conn, ERRORS, _ERROR_KEY, _error_rows(failures))


def error_code(error: Any) -> str:
    """A failed job's error code as the rollup counts it."""
    code = error.get("code") if isinstance(error, dict) else None
    return str(code or "error")[:64]


def rebuild(session: Session) -> int:
    """Sum the whole ledger and every failed job into an emptied rollup; returns the ledger rows summed."""
    conn = session.connection()
    conn.execute(delete(USAGE))
    conn.execute(delete(ERRORS))
    ledger = session.execute(
        select(
            UsageEntry.created_at,
            UsageEntry.api_key_id,
            UsageEntry.model_served,
            UsageEntry.model_requested,
            UsageEntry.provider_served,
            UsageEntry.prompt_tokens,
            UsageEntry.completion_tokens,
            UsageEntry.cost_usd,
            UsageEntry.latency_ms,
        ).execution_options(yield_per=10_000)
    )
    summed = 0

    def entries() -> Iterable[tuple[datetime, str, str, str, int, int, Decimal, int | None]]:
        nonlocal summed
        for at, key, served, asked, provider, prompt, completion, cost, latency in ledger:
            summed += 1
            yield at, key, served or asked, provider or "", prompt, completion, cost, latency

    # Minutes only where retention keeps them (MINUTE_ROLLUP_DAYS): older ones are in their hours.
    minutes_since = bucket_of(datetime.now(UTC) - timedelta(days=MINUTE_ROLLUP_DAYS), MINUTE)
    _upsert(conn, USAGE, _USAGE_KEY, _usage_rows(entries(), minutes_since))
    failed = session.execute(
        select(Job.completed_at, Job.api_key_id, Job.model, Job.error).where(
            Job.status == "failed", Job.completed_at.is_not(None)
        )
    )
    add_failures(conn, [(at, key, model, error_code(error)) for at, key, model, error in failed])
    return summed


def fill_if_empty(session: Session) -> int:
    """Rebuild the rollup when it is empty and the ledger is not (the first start after the upgrade)."""
    if session.scalar(select(exists().select_from(USAGE))) or not session.scalar(
        select(exists().select_from(UsageEntry))
    ):
        return 0
    return rebuild(session)
