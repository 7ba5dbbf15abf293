"""Handing a stored job to the queue."""

from __future__ import annotations

from llmproxy.errors import dependency_unavailable
from llmproxy.jobs import store
from llmproxy.jobs.queues import RUN_JOB_TASK
from web.services import services
from web.session import commit, db


def enqueue(job_id: str, queue: str) -> None:
    """Send the job's task; if the broker is down, remove the job so nothing is half-written."""
    try:
        services().celery.send_task(RUN_JOB_TASK, args=[job_id], queue=queue)
    except Exception as exc:
        session = db()
        job = store.get_job(session, job_id)
        if job is not None:
            session.delete(job)
            commit()
        raise dependency_unavailable("Redis") from exc
