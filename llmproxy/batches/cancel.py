"""Ending a batch early: cancelled by its owner, or expired past its completion window.

A batch still `validating` has no lines yet: a cancel ends it at once (`cancelled`). Otherwise queued
lines are cancelled at once (one UPDATE); lines already running finish, and the batch is finalized
once none is left (llmproxy.batches.results).
"""

from __future__ import annotations

from datetime import datetime

import redis
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from llmproxy.batches.states import BatchStatus
from llmproxy.errors import bad_request, error_object
from llmproxy.jobs import live
from llmproxy.jobs.states import JobStatus
from llmproxy.limits.queued import forget_queued
from llmproxy.storage.engine import rowcount
from llmproxy.storage.models import Batch, Job
from llmproxy.storage.timestamps import utcnow

# How long a cancelled or expired batch's ending mark keeps its lines from starting: a worker that read a
# line's row just before the cancel committed claims within milliseconds; a cancel that died before its
# commit holds the lines back only this long.
ENDING_MARK_SECONDS = 60


def cancel_batch(session: Session, client: redis.Redis, batch: Batch) -> list[tuple[str, int]]:
    """Start cancelling: queued lines are cancelled at once (one UPDATE), running ones finish.

    Returns the (job id, run) of the lines it cancelled. The caller commits, wakes their long-pollers
    (llmproxy.jobs.events) and then tries to finalize (nothing may be left running).
    """
    if batch.status == BatchStatus.VALIDATING and _cancel_validating(session, client, batch):
        return []
    if batch.status in (BatchStatus.CANCELLING, BatchStatus.CANCELLED) or batch.expired_at is not None:
        return []  # already ending; cancelling again changes nothing
    if batch.status != BatchStatus.IN_PROGRESS:
        raise bad_request(f"A batch with status '{batch.status}' cannot be cancelled", code="invalid_state")
    now = utcnow()
    result = session.execute(
        update(Batch)
        .where(Batch.id == batch.id, Batch.status == BatchStatus.IN_PROGRESS, Batch.expired_at.is_(None))
        .values(status=BatchStatus.CANCELLING, cancelling_at=now)
        .execution_options(synchronize_session=False)
    )
    cancelled = []
    if rowcount(result) == 1:
        cancelled = cancel_queued_lines(
            session, client, batch.id, code="batch_cancelled", message="The batch was cancelled"
        )
    session.refresh(batch)
    return cancelled


def _cancel_validating(session: Session, client: redis.Redis, batch: Batch) -> bool:
    # No line exists yet: the batch ends here, and its validation, when it runs, finds it no longer validating.
    # If the validation committed first, the batch is in_progress now and is cancelled as any running one.
    now = utcnow()
    result = session.execute(
        update(Batch)
        .where(Batch.id == batch.id, Batch.status == BatchStatus.VALIDATING)
        .values(status=BatchStatus.CANCELLED, cancelling_at=now, cancelled_at=now)
        .execution_options(synchronize_session=False)
    )
    session.refresh(batch)
    if rowcount(result) != 1:
        return False
    forget_queued(client, batch.api_key_id, [batch.id])  # the place it held among the key's queued jobs
    return True


def cancel_queued_lines(
    session: Session, client: redis.Redis, batch_id: str, *, code: str, message: str
) -> list[tuple[str, int]]:
    """Cancel every line of the batch that has not started, in one UPDATE; return their (job id, run).

    A line a worker has claimed runs in Redis while its row still says queued (the writer stores its
    outcome when it ends): the batch's ending mark first keeps any more lines from starting, then the
    lines already started are left to finish and the others are cancelled.
    """
    live.mark_batch_ending(client, batch_id, seconds=ENDING_MARK_SECONDS)
    sent = session.scalars(
        select(Job.id).where(Job.batch_id == batch_id, Job.status == JobStatus.QUEUED, Job.enqueued_at.is_not(None))
    ).all()
    started = live.started(client, list(sent)) if sent else set()
    query = update(Job).where(Job.batch_id == batch_id, Job.status == JobStatus.QUEUED)
    if started:
        query = query.where(Job.id.not_in(started))
    rows = session.execute(
        query.values(
            status=JobStatus.CANCELLED,
            completed_at=utcnow(),
            cancel_requested=True,
            lease_expires_at=None,
            error=error_object(message, code=code),
        )
        .returning(Job.id, Job.run_count)
        .execution_options(synchronize_session=False)
    )
    cancelled = [(job_id, run) for job_id, run in rows]
    key_id = session.scalar(select(Batch.api_key_id).where(Batch.id == batch_id))
    if cancelled and key_id is not None:
        forget_queued(client, key_id, [job_id for job_id, _run in cancelled])  # they no longer count as queued
    return cancelled


def due_for_expiry(session: Session, now: datetime, limit: int = 100) -> list[str]:
    """In-progress batches past their completion window that have not been expired yet."""
    return list(
        session.scalars(
            select(Batch.id)
            .where(Batch.status == BatchStatus.IN_PROGRESS, Batch.expires_at < now, Batch.expired_at.is_(None))
            .limit(limit)
        )
    )


def expire_batch(session: Session, client: redis.Redis, batch_id: str) -> list[tuple[str, int]] | None:
    """Mark the batch expired and cancel its queued lines; running lines finish, then it is finalized as `expired`.

    Returns the (job id, run) of the lines it cancelled, or None if the batch was not due.
    """
    now = utcnow()
    result = session.execute(
        update(Batch)
        .where(
            Batch.id == batch_id,
            Batch.status == BatchStatus.IN_PROGRESS,
            Batch.expired_at.is_(None),
            Batch.expires_at < now,
        )
        .values(expired_at=now)
        .execution_options(synchronize_session=False)
    )
    if rowcount(result) != 1:
        return None
    return cancel_queued_lines(
        session,
        client,
        batch_id,
        code="batch_expired",
        message="The batch's completion window ended before this request ran",
    )
