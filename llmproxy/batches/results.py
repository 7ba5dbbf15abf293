"""The end of a batch: once no line is queued or running, one process finalizes it.

Finalizing is guarded twice so that any number of workers may try at once:
1. `in_progress`/`cancelling` → `finalizing` is a conditional UPDATE that also checks, in the
   same statement, that no line is unfinished; only the process whose UPDATE matched goes on.
2. The result files and the final status are written in one transaction, conditional on
   `finalizing_at` still being the claim's own; a finalizer that died is replaced by the
   sweeper (`finalize_stalled`), and a late original then writes nothing.
Counts come from the jobs table at that point, never from increments.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import redis
from sqlalchemy import Exists, SQLColumnExpression, exists, select, update
from sqlalchemy.orm import Session, sessionmaker

from llmproxy.batches import cancel, dispatch, store
from llmproxy.batches.files import FileBuilder, FilePurpose
from llmproxy.batches.states import RUNNING_BATCH_STATUSES, BatchStatus
from llmproxy.jobs import events
from llmproxy.jobs.states import UNFINISHED_JOB_STATUSES, JobStatus
from llmproxy.jsontypes import JSON
from llmproxy.storage.engine import rowcount, session_scope
from llmproxy.storage.models import Batch, Job
from llmproxy.storage.timestamps import utcnow

log = logging.getLogger(__name__)


def _unfinished(batch_id: str | SQLColumnExpression[Any]) -> Exists:
    return exists().where(Job.batch_id == batch_id, Job.status.in_(UNFINISHED_JOB_STATUSES))


def lines_ended(
    session_factory: sessionmaker[Session],
    ended: Mapping[str, int],
    *,
    send: dispatch.Send,
    finalize: Callable[[str], None],
) -> None:
    """After the writer stored ended lines (batch id -> how many): send as many next lines of each batch,
    or hand a batch none of whose lines is left unfinished to `finalize` (a task: it writes the result files)."""
    for batch_id, count in ended.items():
        with session_scope(session_factory) as session:
            unfinished = session.scalar(select(_unfinished(batch_id)))
        if unfinished:
            dispatch.send_next(session_factory, batch_id, send=send, ended=count)
        else:
            finalize(batch_id)


def finalize_if_done(
    session_factory: sessionmaker[Session], batch_id: str, *, retention_days: float
) -> BatchStatus | None:
    """Finalize the batch if none of its lines is queued or running and nobody else does; return the final status."""
    now = utcnow()
    with session_scope(session_factory) as session:
        if session.scalar(select(_unfinished(batch_id))):
            return None  # the common case, read-only: an UPDATE would take SQLite's write lock per line
        result = session.execute(
            update(Batch)
            .where(Batch.id == batch_id, Batch.status.in_(RUNNING_BATCH_STATUSES), ~_unfinished(batch_id))
            .values(status=BatchStatus.FINALIZING, finalizing_at=now)
            .execution_options(synchronize_session=False)
        )
        claimed = rowcount(result) == 1
    if not claimed:
        return None
    return write_results(session_factory, batch_id, claim=now, retention_days=retention_days)


def write_results(
    session_factory: sessionmaker[Session], batch_id: str, *, claim: datetime, retention_days: float
) -> BatchStatus | None:
    """Write the output and error files and the final status, if our claim on `finalizing` still holds."""
    with session_scope(session_factory) as session:
        batch = session.get(Batch, batch_id)
        if batch is None or batch.status != BatchStatus.FINALIZING:
            return None
        outcome = target_status(batch)
        file_days = batch.output_expires_seconds / 86400 if batch.output_expires_seconds is not None else retention_days
        # Written a chunk at a time as the lines are formatted: a batch's results are never whole in memory.
        builders = {
            name: FileBuilder(
                session,
                api_key_id=batch.api_key_id,
                purpose=FilePurpose.BATCH_OUTPUT,
                filename=f"{batch_id}_{name}.jsonl",
                retention_days=file_days,
            )
            for name in ("output", "error")
        }
        counts = result_lines(
            session,
            batch_id,
            cancelled_code=_cancel_code(outcome),
            output=builders["output"].write,
            errors=builders["error"].write,
        )
        files = {name: row for name, builder in builders.items() if (row := builder.close()) is not None}
        now = utcnow()
        values: dict[str, Any] = dict(
            status=outcome,
            output_file_id=files["output"].id if "output" in files else None,
            error_file_id=files["error"].id if "error" in files else None,
            usage=store.line_usage(session, batch_id),
            **counts,
        )
        values[
            {
                BatchStatus.COMPLETED: "completed_at",
                BatchStatus.CANCELLED: "cancelled_at",
                BatchStatus.EXPIRED: "expired_at",
            }[outcome]
        ] = now
        if outcome == BatchStatus.EXPIRED:
            values["expired_at"] = batch.expired_at or now
        written = session.execute(
            update(Batch)
            .where(Batch.id == batch_id, Batch.status == BatchStatus.FINALIZING, Batch.finalizing_at == claim)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if rowcount(written) != 1:
            # Someone else took over a finalization they thought stalled: theirs stands.
            session.rollback()
            return None
    log.info("batch %s %s: %s", batch_id, outcome, counts)
    return outcome


def target_status(batch: Batch) -> BatchStatus:
    """What a finalizing batch becomes: cancelled if it was cancelled, expired if its window ended, else completed."""
    if batch.cancelling_at is not None:
        return BatchStatus.CANCELLED
    if batch.expired_at is not None:
        return BatchStatus.EXPIRED
    return BatchStatus.COMPLETED


def _cancel_code(outcome: BatchStatus) -> str:
    return "batch_expired" if outcome == BatchStatus.EXPIRED else "batch_cancelled"


def result_lines(
    session: Session,
    batch_id: str,
    *,
    cancelled_code: str,
    output: Callable[[bytes], None],
    errors: Callable[[bytes], None],
) -> dict[str, int]:
    """Hand each line to `output` (succeeded) or `errors` (everything else); return the final counts.
    Every line exactly once."""
    counts = {"total": 0, "completed": 0, "failed": 0}
    rows = session.execute(
        select(Job.id, Job.custom_id, Job.status, Job.result, Job.error, Job.error_status)
        .where(Job.batch_id == batch_id)
        .order_by(Job.created_at, Job.id)
        .execution_options(yield_per=1000)
    )
    for job_id, custom_id, status, result, error, error_status in rows:
        counts["total"] += 1
        line: JSON = {
            "id": "batch_req_" + job_id.removeprefix("job_"),
            "custom_id": custom_id,
            "response": None,
            "error": None,
        }
        if status == JobStatus.COMPLETED:
            counts["completed"] += 1
            line["response"] = {"status_code": 200, "request_id": job_id, "body": result}
        elif status == JobStatus.FAILED:
            counts["failed"] += 1
            line["response"] = {"status_code": error_status or 500, "request_id": job_id, "body": {"error": error}}
        else:
            # Never ran (or stopped) because the batch was cancelled or expired.
            code = (error or {}).get("code")
            code = code if code in ("batch_cancelled", "batch_expired") else cancelled_code
            line["error"] = {"code": code, "message": (error or {}).get("message") or "The request did not run"}
        target = output if status == JobStatus.COMPLETED else errors
        target(json.dumps(line, separators=(",", ":")).encode() + b"\n")
    return counts


def unfinalized(session: Session, limit: int = 100) -> list[str]:
    """Running batches whose lines have all ended (the worker that ended the last one died before finalizing)."""
    return list(
        session.scalars(
            select(Batch.id).where(Batch.status.in_(RUNNING_BATCH_STATUSES), ~_unfinished(Batch.id)).limit(limit)
        )
    )


def finalize_stalled(session_factory: sessionmaker[Session], *, stale_seconds: float, retention_days: float) -> int:
    """Take over finalizations that have not ended within `stale_seconds` (their process died); return how many."""
    cutoff = utcnow() - timedelta(seconds=stale_seconds)
    with session_scope(session_factory) as session:
        stalled = list(
            session.execute(
                select(Batch.id, Batch.finalizing_at)
                .where(Batch.status == BatchStatus.FINALIZING, Batch.finalizing_at < cutoff)
                .limit(20)
            )
        )
    taken = 0
    for batch_id, old_claim in stalled:
        claim = utcnow()
        with session_scope(session_factory) as session:
            won = session.execute(
                update(Batch)
                .where(Batch.id == batch_id, Batch.status == BatchStatus.FINALIZING, Batch.finalizing_at == old_claim)
                .values(finalizing_at=claim)
                .execution_options(synchronize_session=False)
            )
            if rowcount(won) != 1:
                continue
        if write_results(session_factory, batch_id, claim=claim, retention_days=retention_days):
            taken += 1
    return taken


def sweep(
    session_factory: sessionmaker[Session],
    *,
    send: dispatch.Send,
    stale_seconds: float,
    retention_days: float,
    redis_client: redis.Redis,
) -> int:
    """The periodic pass: expire batches past their window (waking the long-pollers of the lines that cancels),
    top up running ones, finalize ended or stalled ones."""
    with session_scope(session_factory) as session:
        due = cancel.due_for_expiry(session, utcnow())
    for batch_id in due:
        with session_scope(session_factory) as session:
            cancelled = cancel.expire_batch(session, redis_client, batch_id)
        if cancelled:
            events.publish_cancelled(redis_client, cancelled)
    dispatch.top_up_running(session_factory, send=send)
    with session_scope(session_factory) as session:
        ended = unfinalized(session)
    done = sum(1 for batch_id in ended if finalize_if_done(session_factory, batch_id, retention_days=retention_days))
    return (
        len(due) + done + finalize_stalled(session_factory, stale_seconds=stale_seconds, retention_days=retention_days)
    )
