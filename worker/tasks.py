"""Thin Celery tasks: each calls one llmproxy service with this process's resources."""

from __future__ import annotations

import logging

from celery import shared_task

from llmproxy.batches import dispatch, results, validation
from llmproxy.batches.states import BatchStatus
from llmproxy.jobs import live
from llmproxy.jobs.execution import PrefetchedRows, execute_job
from llmproxy.jobs.pacing import Deferred
from llmproxy.jobs.queues import (
    DISPATCH_BATCH_TASK,
    FINALIZE_BATCH_TASK,
    RUN_JOB_TASK,
    RUN_LINES_TASK,
    VALIDATE_BATCH_TASK,
    Queue,
)
from llmproxy.jobs.states import FINAL_JOB_STATUSES
from llmproxy.jobs.store import lost_jobs
from llmproxy.ops import retention
from llmproxy.storage.engine import session_scope
from llmproxy.storage.models import Job
from worker import app
from worker.app import resources

log = logging.getLogger(__name__)


@shared_task(name=RUN_JOB_TASK, acks_late=True, reject_on_worker_lost=True, ignore_result=True, bind=True)
def run_job(self, job_id: str) -> str | None:
    """Execute one job (idempotent: a redelivered task for a job someone else runs does nothing)."""
    queue = (self.request.delivery_info or {}).get("routing_key") or Queue.BATCH
    if queue == Queue.BATCH:
        dispatch.touch(resources().redis, [job_id])  # this line's message is alive (see batch_dispatch)
    return _execute(job_id, queue)


@shared_task(name=RUN_LINES_TASK, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def run_lines(job_ids: list[str]) -> int:
    """Execute a few batch lines one after the other (each idempotent, as run_job); how many ended here."""
    res = resources()
    dispatch.touch(res.redis, job_ids)  # their message is alive
    rows = PrefetchedRows(res.session_factory, job_ids)  # one SELECT for the message, not one per line
    ended = 0
    for job_id in job_ids:
        try:
            ended += _execute(job_id, Queue.BATCH, row=rows.take(job_id)) in FINAL_JOB_STATUSES
        except Exception:
            # The other lines of the message still run; this one stays queued and the lost-line sweep re-sends it.
            log.exception("batch line %s could not run", job_id)
    return ended


def _execute(job_id: str, queue: str, row: Job | None = None) -> str | None:
    # A batch line that ends is stored by the writer, which then sends the batch's next lines (or finalizes it).
    res = resources()
    try:
        return execute_job(
            job_id,
            session_factory=res.session_factory,
            redis_client=res.redis,
            settings=res.settings,
            queue=queue,
            snapshots=res.snapshots,
            counters=res.counters,
            leases=res.leases,
            row=row,
        )
    except Deferred as wait:
        # Paced: the key has no capacity now; come back (alone) when it returns.
        run_job.apply_async(args=[job_id], queue=queue, countdown=wait.delay)
        return "deferred"


def send_batch_lines(job_ids: list[str]) -> None:
    """Send batch lines to the batch queue, a few per run_lines task, over one producer connection."""
    app.send_batch_lines(run_job.app, job_ids)


@shared_task(name=VALIDATE_BATCH_TASK, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def validate_batch(batch_id: str) -> str | None:
    """Check a new batch's input file; store and send its lines, or fail it (if this dies, the sweeper resends it)."""
    res = resources()
    status = validation.validate_batch(res.session_factory, res.redis, batch_id, settings=res.settings)
    if status == BatchStatus.IN_PROGRESS:
        # Stored: if this process dies now, the sweeper sends the lines (dispatch.top_up_running).
        dispatch.top_up(res.session_factory, batch_id, send=send_batch_lines)
    return status


@shared_task(name=DISPATCH_BATCH_TASK, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def dispatch_batch(batch_id: str) -> int:
    """Send a batch's first window of lines (if this task dies, the sweeper sends them).

    Only web processes older than `validate_batch` send it: kept for their messages during a rolling deploy."""
    return dispatch.top_up(resources().session_factory, batch_id, send=send_batch_lines)


@shared_task(name=FINALIZE_BATCH_TASK, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def finalize_batch(batch_id: str) -> str | None:
    """Write a batch's results once none of its lines runs (after a cancel); a lost message is the sweeper's."""
    res = resources()
    return results.finalize_if_done(res.session_factory, batch_id, retention_days=res.settings.retention_days)


@shared_task(name="llmproxy.sweep_jobs", ignore_result=True)
def sweep_jobs() -> int:
    """Re-enqueue jobs whose task was lost (worker killed, Redis flushed)."""
    res = resources()
    # In Redis: jobs whose lease lapsed (a dead worker's run, or a message it had prefetched). Sent before the
    # database is read: `due` has already given them their next lease, so a database outage must not drop them.
    targets = live.due(res.redis, lease_seconds=res.settings.job_lease_seconds)
    for job_id, queue in targets:
        run_job.apply_async(args=[job_id], queue=queue)
    with session_scope(res.session_factory) as session:
        stored_lost = [(job.id, job.queue) for job in lost_jobs(session)]
    for job_id, queue in stored_lost:
        run_job.apply_async(args=[job_id], queue=queue)
    targets += stored_lost
    if targets:
        log.info("re-enqueued %d lost jobs", len(targets))
    lines = dispatch.requeue_lost(
        res.session_factory, res.redis, send=send_batch_lines, stale_seconds=res.settings.batch_lost_after_seconds
    )
    if lines:
        log.info("re-enqueued %d batch-queue jobs whose message was lost", lines)
    return len(targets) + lines


@shared_task(name="llmproxy.sweep_batches", ignore_result=True)
def sweep_batches() -> int:
    """Validate batches whose validation was lost, expire batches past their window, top up running ones, finalize
    those whose finalizer died or never ran."""
    res = resources()
    stalled = validation.stalled_validations(
        res.session_factory, res.redis, stale_seconds=res.settings.batch_lost_after_seconds
    )
    for batch_id in stalled:
        validate_batch.apply_async(args=[batch_id], queue=Queue.BATCH)
    if stalled:
        log.info("re-sent the validation of %d batches", len(stalled))
    return len(stalled) + results.sweep(
        res.session_factory,
        send=send_batch_lines,
        retention_days=res.settings.retention_days,
        stale_seconds=res.settings.batch_finalize_stall_seconds,
        redis_client=res.redis,
    )


@shared_task(name="llmproxy.purge_records", ignore_result=True)
def purge_records() -> dict:
    """Delete finished jobs, ended batches and expired files past RETENTION_DAYS (the ledger stays)."""
    res = resources()
    counts = retention.purge(res.session_factory, retention_days=res.settings.retention_days)
    if any(counts.values()):
        log.info("retention purged %s", counts)
    return counts
