"""Finding a caller's job wherever it lives now: in Redis while in flight, else in the database."""

from __future__ import annotations

import redis
from sqlalchemy.orm import Session

from llmproxy.errors import not_found
from llmproxy.jobs import live
from llmproxy.jobs.states import FINAL_JOB_STATUSES
from llmproxy.jobs.store import get_own_job
from llmproxy.storage.models import Job


def find_own_job(session: Session, client: redis.Redis, api_key_id: str, job_id: str) -> Job:
    """The caller's job, from its live state if it has one, else its row; another key's job is 404."""
    job = live.read(client, job_id)
    if job is None:
        return get_own_job(session, api_key_id, job_id)
    if job.api_key_id != api_key_id:
        raise not_found("job")
    return job


def as_they_are_now(client: redis.Redis, jobs: list[Job]) -> list[Job]:
    """Rows of a listing with the live state of those still in flight (a stored job runs in Redis until recorded)."""
    unfinished = [job.id for job in jobs if job.status not in FINAL_JOB_STATUSES]
    current = live.read_many(client, unfinished) if unfinished else {}
    return [current.get(job.id, job) for job in jobs]
