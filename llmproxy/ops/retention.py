"""Retention: delete finished jobs, ended batches and expired files (chunks too) after RETENTION_DAYS (at least 1 day),
and the usage rollup's minute rows after MINUTE_ROLLUP_DAYS (its hourly rows, like the ledger, stay).

The usage ledger is never deleted: it is the accounting record. Its job_id has no foreign key
(migration 0002), so a ledger row keeps naming the job it billed after the job is gone, and
"billed once" still holds: a deleted job cannot run again.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, delete, select
from sqlalchemy.orm import Session, sessionmaker

from llmproxy.batches.file_chunks import delete_chunks
from llmproxy.batches.states import FINAL_BATCH_STATUSES
from llmproxy.jobs.states import FINAL_JOB_STATUSES
from llmproxy.storage.engine import session_scope
from llmproxy.storage.models import Batch, Job, StoredFile
from llmproxy.storage.rollups import MINUTE, MINUTE_ROLLUP_DAYS, ErrorRollup, UsageRollup
from llmproxy.storage.timestamps import utcnow

ROWS_PER_DELETE = 1000
MIN_DAYS = 1.0  # Idempotency-Keys are promised for 24 h; their jobs must live that long


def purge(
    session_factory: sessionmaker[Session], *, retention_days: float, now: datetime | None = None, max_rounds: int = 100
) -> dict[str, int]:
    """Delete what is older than the retention period, in chunks; return how many rows of each kind."""
    now = now or utcnow()
    cutoff = now - timedelta(days=max(MIN_DAYS, retention_days))
    # Ended batches first: their lines then no longer belong to a running batch.
    old_batches = select(Batch.id).where(Batch.status.in_(FINAL_BATCH_STATUSES), Batch.created_at < cutoff)
    running_batches = select(Batch.id).where(Batch.status.not_in(FINAL_BATCH_STATUSES))
    old_jobs = select(Job.id).where(
        Job.status.in_(FINAL_JOB_STATUSES),
        Job.created_at < cutoff,
        Job.completed_at < cutoff,
        # A line of a batch that is still running stays until the batch ends, whatever its age.
        (Job.batch_id.is_(None)) | Job.batch_id.not_in(running_batches),
    )
    old_files = select(StoredFile.id).where(StoredFile.expires_at <= now)
    minutes_cutoff = now - timedelta(days=MINUTE_ROLLUP_DAYS)
    counts: dict[str, int] = {}
    for name, model, query in (
        ("batches", Batch, old_batches),
        ("jobs", Job, old_jobs),
        ("files", StoredFile, old_files),
        *(
            (table, rows, select(rows.id).where(rows.granularity == MINUTE, rows.bucket < minutes_cutoff))
            for table, rows in (("usage_minutes", UsageRollup), ("error_minutes", ErrorRollup))
        ),
    ):
        counts[name] = _delete_in_chunks(session_factory, model, query, max_rounds)
    return counts


def _delete_in_chunks(session_factory: sessionmaker[Session], model: Any, query: Select[Any], max_rounds: int) -> int:
    # Short transactions: a purge of millions of rows must not hold locks for minutes.
    total = 0
    for _ in range(max_rounds):
        with session_scope(session_factory) as session:
            ids = list(session.scalars(query.limit(ROWS_PER_DELETE)))
            if not ids:
                break
            if model is StoredFile:
                delete_chunks(session, ids)  # a file's bytes go with it (first: they reference its row)
            session.execute(delete(model).where(model.id.in_(ids)).execution_options(synchronize_session=False))
        total += len(ids)
        if len(ids) < ROWS_PER_DELETE:
            break
    return total
