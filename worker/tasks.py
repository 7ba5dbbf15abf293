"""Thin Celery tasks: each calls one llmproxy service with this process's resources."""
from __future__ import annotations

import logging

from celery import shared_task

from llmproxy import execution, jobs
from llmproxy.db import session_scope
from llmproxy.queueing import BATCH, RUN_JOB_TASK
from worker.app import resources

log = logging.getLogger(__name__)


@shared_task(name=RUN_JOB_TASK, acks_late=True, reject_on_worker_lost=True, ignore_result=True, bind=True)
def run_job(self, job_id: str) -> str | None:
    """Execute one job (idempotent: a redelivered task for a job someone else runs does nothing)."""
    res = resources()
    try:
        return execution.execute_job(job_id, session_factory=res.session_factory, redis_client=res.redis,
                                     settings=res.settings)
    except execution.Deferred as wait:
        # Paced: the key has no capacity now; come back when it returns.
        queue = (self.request.delivery_info or {}).get("routing_key") or BATCH
        run_job.apply_async(args=[job_id], queue=queue, countdown=wait.delay)
        return "deferred"


@shared_task(name="llmproxy.sweep_jobs", ignore_result=True)
def sweep_jobs() -> int:
    """Re-enqueue jobs whose task was lost (worker killed, Redis flushed)."""
    res = resources()
    with session_scope(res.session_factory) as session:
        lost = jobs.lost_jobs(session, queued_grace_seconds=res.settings.job_lease_seconds * 2)
        targets = [(job.id, job.queue) for job in lost]
    for job_id, queue in targets:
        run_job.apply_async(args=[job_id], queue=queue)
    if targets:
        log.info("re-enqueued %d lost jobs", len(targets))
    return len(targets)
