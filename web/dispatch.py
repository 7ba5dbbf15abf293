"""Handing stored work to the workers: one job's task, or a batch's dispatch and finalization."""

from __future__ import annotations

import logging

import redis
from kombu.exceptions import KombuError

from llmproxy.errors import dependency_unavailable
from llmproxy.jobs import live
from llmproxy.jobs.live_job import LiveJob
from llmproxy.jobs.queues import RUN_JOB_TASK, Queue
from llmproxy.jobs.store import get_job
from llmproxy.limits.queued import forget_queued
from web.context import commit, db, resources

log = logging.getLogger(__name__)


def enqueue(job_id: str, queue: str) -> None:
    """Send the job's task; if the broker is down, remove the job so nothing is half-written."""
    try:
        resources().celery.send_task(RUN_JOB_TASK, args=[job_id], queue=queue)
    except Exception as exc:
        session = db()
        job = get_job(session, job_id)
        if job is not None:
            session.delete(job)
            commit()
            try:
                forget_queued(resources().redis, job.api_key_id, [job_id])
            except redis.RedisError:  # Redis is likely what failed: the entry lapses on its own
                pass
        raise dependency_unavailable("Redis") from exc


def enqueue_live(job: LiveJob) -> None:
    """Make an interactive job live in Redis and send its task; if either fails, nothing of it stays."""
    client = resources().redis
    try:
        live.create(client, job, lease_seconds=resources().settings.job_lease_seconds)
        resources().celery.send_task(RUN_JOB_TASK, args=[job.id], queue=job.queue)
    except Exception as exc:
        try:
            live.discard(client, job.id)
        except redis.RedisError:
            log.warning("could not discard job %s; it expires on its own", job.id)
        raise dependency_unavailable("Redis") from exc


def send_batch_task(task: str, batch_id: str) -> None:
    """Ask a worker to validate, dispatch or finalize a stored batch; if the broker is down, the sweeper does it."""
    try:
        resources().celery.send_task(task, args=[batch_id], queue=Queue.BATCH)
    except (KombuError, redis.RedisError, OSError):
        # The batch is stored: answering an error now would make the client submit (or cancel) it twice.
        log.warning("could not send %s for batch %s; the batch sweeper will do it", task, batch_id)
