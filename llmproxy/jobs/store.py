"""Jobs in the database: create, find, list, cancel queued ones (running jobs live in Redis: llmproxy.jobs.live)."""

from __future__ import annotations

from typing import cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.orm import Session

from llmproxy.errors import error_object
from llmproxy.ids import new_job_id
from llmproxy.jobs.states import JobStatus
from llmproxy.jsontypes import JSON
from llmproxy.keys.virtual_keys import KeyInfo
from llmproxy.storage.engine import rowcount
from llmproxy.storage.models import ApiKey, Job
from llmproxy.storage.pagination import page_after
from llmproxy.storage.timestamps import utcnow


def create_job(
    session: Session,
    *,
    api_key: ApiKey | KeyInfo,
    body: JSON,
    queue: str,
    operation: str = "chat",
    stream: bool = False,
    metadata: JSON | None = None,
    batch_id: str | None = None,
    custom_id: str | None = None,
    idempotency_key: str | None = None,
    request_hash: str | None = None,
    job_id: str | None = None,
) -> Job:
    """Insert a queued job (the caller commits before enqueueing it); returns it, detached from the session."""
    job = Job(
        id=job_id or new_job_id(),
        api_key_id=api_key.id,
        model=body["model"],
        status=JobStatus.QUEUED,
        queue=queue,
        operation=operation,
        stream=stream,
        request=body,
        meta=metadata,
        batch_id=batch_id,
        custom_id=custom_id,
        idempotency_key=idempotency_key,
        request_hash=request_hash,
        attempts=[],
        run_count=0,
        cancel_requested=False,
        created_at=utcnow(),
    )
    # A Core INSERT: every request does this once, and the ORM's unit of work measured a fifth of the
    # web's CPU per request (bench/). A duplicate Idempotency-Key raises IntegrityError here, as a flush would.
    # On the session's connection: the same transaction, without the ORM session's per-statement work.
    session.connection().execute(_INSERT_JOB, {column.key: getattr(job, attr) for attr, column in JOB_COLUMNS})
    return job


# (attribute, column) of every mapped column of Job: `meta` is the column "metadata".
JOB_COLUMNS = [(prop.key, prop.columns[0]) for prop in Job.__mapper__.column_attrs]

# Declarative classes type `__table__` as a FromClause; a mapped class's is always a Table.
JOBS = cast(Table, Job.__table__)

_INSERT_JOB = JOBS.insert()


def get_job(session: Session, job_id: str) -> Job | None:
    """A job by id."""
    return session.get(Job, job_id)


_READ_JOB = select(JOBS).where(JOBS.c.id == bindparam("p_id"))
_READ_JOBS = select(JOBS).where(JOBS.c.id.in_(bindparam("p_ids", expanding=True)))


def read_job(session: Session, job_id: str) -> Job | None:
    """A job by id as a detached copy, read with one Core SELECT (a worker reads each stored job it runs:
    the ORM's identity-map load measured a sixth of a batch worker's CPU)."""
    row = session.connection().execute(_READ_JOB, {"p_id": job_id}).one_or_none()
    return None if row is None else _detached(row._mapping)


def read_jobs(session: Session, job_ids: list[str]) -> dict[str, Job]:
    """`read_job` for several jobs in one SELECT (the lines of one batch message): the ones that exist, by id."""
    if not job_ids:
        return {}
    rows = session.connection().execute(_READ_JOBS, {"p_ids": job_ids})
    jobs = (_detached(row._mapping) for row in rows)
    return {job.id: job for job in jobs}


def _detached(mapping: RowMapping) -> Job:
    return Job(**{attr: mapping[column] for attr, column in JOB_COLUMNS})


def lost_jobs(session: Session, *, limit: int = 500) -> list[Job]:
    """Rows a previous version left running in the database whose lease expired (jobs now run in Redis)."""
    return list(
        session.scalars(
            select(Job).where(Job.status == JobStatus.IN_PROGRESS, Job.lease_expires_at < utcnow()).limit(limit)
        )
    )


def request_fingerprint(payload: JSON) -> str:
    """SHA-256 of a request's canonical JSON, to tell a replay from a different request."""
    import hashlib
    import json

    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def find_by_idempotency_key(session: Session, api_key_id: str, idempotency_key: str) -> Job | None:
    """The job this key created with this Idempotency-Key, if any."""
    return session.scalar(select(Job).where(Job.api_key_id == api_key_id, Job.idempotency_key == idempotency_key))


def get_own_job(session: Session, api_key_id: str, job_id: str) -> Job:
    """The caller's job; another key's job is 404, like an unknown one."""
    from llmproxy.errors import not_found

    job = session.get(Job, job_id)
    if job is None or job.api_key_id != api_key_id:
        raise not_found("job")
    return job


def list_jobs(
    session: Session, api_key_id: str, *, status: str | None, limit: int, after: str | None, batch_id: str | None = None
) -> tuple[list[Job], bool]:
    """This key's jobs (of one batch, if given), newest first, after the cursor job; returns (page, has_more)."""
    query = select(Job).where(Job.api_key_id == api_key_id)
    if status:
        query = query.where(Job.status == status)
    if batch_id:
        query = query.where(Job.batch_id == batch_id)
    cursor = get_own_job(session, api_key_id, after) if after else None
    return page_after(session, query, Job, cursor=cursor, limit=limit)


def cancel_job(session: Session, job: Job) -> bool:
    """Cancel a queued job at once (True); a running one is only flagged, its worker stops it when it can."""
    now = utcnow()
    result = session.execute(
        update(Job)
        .where(Job.id == job.id, Job.status == JobStatus.QUEUED)
        .values(
            status=JobStatus.CANCELLED,
            completed_at=now,
            cancel_requested=True,
            error=error_object("The job was cancelled", code="cancelled"),
        )
        .execution_options(synchronize_session=False)
    )
    if rowcount(result) == 1:
        session.refresh(job)
        return True
    if job.status == JobStatus.IN_PROGRESS:
        job.cancel_requested = True
    return False
