"""Read what a request left in the database (job row, usage ledger, key spend, configuration rows) from a test."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

from sqlalchemy import select

from llmproxy.devtools.waiting import wait_for
from llmproxy.storage.engine import session_scope
from llmproxy.storage.models import ApiKey, Deployment, Job, ModelConfig, Provider, UsageEntry
from llmproxy.storage.money import MONEY_QUANTUM

FINAL = ("completed", "failed", "cancelled")


def job(session_factory, job_id: str) -> Job | None:
    """The job row as stored now (detached, readable after the session closes)."""
    with session_scope(session_factory) as session:
        return session.get(Job, job_id)


def wait_for_job(session_factory, job_id: str, statuses=FINAL, timeout: float = 20.0) -> Job:
    """Poll until the job's status is one of `statuses`; return the row."""

    def ended():
        row = job(session_factory, job_id)
        return row if row is not None and row.status in statuses else None

    return wait_for(ended, timeout=timeout, message=f"job {job_id} to reach {statuses}")


def recorded_job(session_factory, job_id: str, timeout: float = 20.0) -> Job:
    """The job's row once the writer stored it (an interactive job has none before it ends)."""
    return wait_for_job(session_factory, job_id, timeout=timeout)


def recorded_ledger(session_factory, job_id: str, timeout: float = 20.0) -> UsageEntry:
    """The job's ledger row once the writer stored it."""
    rows = wait_for(lambda: ledger(session_factory, job_id), timeout=timeout, message=f"the ledger row of {job_id}")
    assert len(rows) == 1, rows
    return rows[0]


def ledger(session_factory, job_id: str | None = None) -> list[UsageEntry]:
    """Usage ledger rows (of one job, if given)."""
    with session_scope(session_factory) as session:
        query = select(UsageEntry).order_by(UsageEntry.id)
        if job_id is not None:
            query = query.where(UsageEntry.job_id == job_id)
        return list(session.scalars(query))


def jobs(session_factory) -> list[Job]:
    """Every job row."""
    with session_scope(session_factory) as session:
        return list(session.scalars(select(Job).order_by(Job.created_at)))


def key_spend(session_factory, key_id: str) -> Decimal:
    """A virtual key's recorded total spend."""
    with session_scope(session_factory) as session:
        return session.get(ApiKey, key_id).spend_usd


def cost(prompt_tokens: int, completion_tokens: int, input_per_1m: str, output_per_1m: str) -> Decimal:
    """The exact cost the proxy must record, computed independently of llmproxy.accounting."""
    total = (
        Decimal(prompt_tokens) * Decimal(input_per_1m) + Decimal(completion_tokens) * Decimal(output_per_1m)
    ) / Decimal(1_000_000)
    return total.quantize(MONEY_QUANTUM, rounding=ROUND_HALF_EVEN)


def snapshot(session_factory) -> list[dict]:
    """Every configuration row (providers, models, keys), to show a refused request changed nothing."""
    with session_factory() as s:
        rows = []
        for model in (Provider, ModelConfig, Deployment, ApiKey):
            for obj in s.scalars(select(model)):
                rows.append({c.key: getattr(obj, c.key) for c in model.__mapper__.column_attrs})
        return rows
