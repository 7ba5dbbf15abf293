"""Job lifecycle: create, claim (idempotent), finish with billing exactly once, and find lost jobs."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, bindparam, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from llmproxy.accounting import Prices, Usage
from llmproxy.db import to_epoch, utcnow
from llmproxy.keys import new_id
from llmproxy.models import ApiKey, Job, UsageEntry
from llmproxy.pagination import page_after
from llmproxy.serializers import money

QUEUED, IN_PROGRESS, COMPLETED, FAILED, CANCELLED = "queued", "in_progress", "completed", "failed", "cancelled"
FINAL = (COMPLETED, FAILED, CANCELLED)


def create_job(session: Session, *, api_key: ApiKey, body: dict, queue: str, stream: bool = False,
               metadata: dict | None = None, batch_id: str | None = None, custom_id: str | None = None,
               idempotency_key: str | None = None, request_hash: str | None = None,
               job_id: str | None = None) -> Job:
    """Insert a queued job (the caller commits before enqueueing it); returns it, detached from the session."""
    job = Job(id=job_id or new_job_id(), api_key_id=api_key.id, model=body["model"], status=QUEUED, queue=queue,
              stream=stream, request=body, meta=metadata, batch_id=batch_id, custom_id=custom_id,
              idempotency_key=idempotency_key, request_hash=request_hash, attempts=[], run_count=0,
              cancel_requested=False, created_at=utcnow())
    # A Core INSERT: every request does this once, and the ORM's unit of work measured a fifth of the
    # web's CPU per request (bench/). A duplicate Idempotency-Key raises IntegrityError here, as a flush would.
    # On the session's connection: the same transaction, without the ORM session's per-statement work.
    session.connection().execute(_INSERT_JOB, {column.key: getattr(job, attr) for attr, column in _JOB_COLUMNS})
    return job


def new_job_id() -> str:
    """A fresh job id (also the request id of its limit reservation)."""
    return new_id("job")


# (attribute, column) of every mapped column of Job: `meta` is the column "metadata".
_JOB_COLUMNS = [(prop.key, prop.columns[0]) for prop in Job.__mapper__.column_attrs]
_JOBS = Job.__table__
_INSERT_JOB = _JOBS.insert()
# Claim: one UPDATE … RETURNING, built once. A queued job, or a running one whose lease expired.
_CLAIM_JOB = (
    _JOBS.update()
    .where(_JOBS.c.id == bindparam("p_id"),
           or_(_JOBS.c.status == QUEUED, and_(_JOBS.c.status == IN_PROGRESS, _JOBS.c.lease_expires_at < bindparam("p_now"))))
    .values(status=IN_PROGRESS, run_count=_JOBS.c.run_count + 1, started_at=bindparam("p_now"),
            lease_expires_at=bindparam("p_until"))
    .returning(*_JOBS.c))


def claim_job(session: Session, job_id: str, *, lease_seconds: float) -> Job | None:
    """Atomically take a queued job, or one whose previous run's lease expired; None if someone else has it.

    The claimed job is returned detached from the session (a plain copy of the row).
    """
    now = utcnow()
    params = {"p_id": job_id, "p_now": now, "p_until": now + timedelta(seconds=lease_seconds)}
    row = session.connection().execute(_CLAIM_JOB, params).one_or_none()
    if row is None:
        return None
    session.commit()
    mapping = row._mapping
    return Job(**{attr: mapping[column] for attr, column in _JOB_COLUMNS})


def renew_lease(session: Session, job_id: str, run: int, *, lease_seconds: float) -> bool:
    """Extend the lease of our run; False if the job is no longer ours."""
    result = session.execute(
        update(Job).where(Job.id == job_id, Job.status == IN_PROGRESS, Job.run_count == run)
        .values(lease_expires_at=utcnow() + timedelta(seconds=lease_seconds))
        .execution_options(synchronize_session=False))
    return result.rowcount == 1


@dataclass
class Outcome:
    """How a run ended, ready to be stored on the job (and billed if it has usage)."""

    status: str
    result: dict | None = None
    error: dict | None = None
    error_status: int | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)
    usage: Usage | None = None
    prices: Prices | None = None
    cost_usd: Decimal | None = None
    served_model: str | None = None
    served_provider: str | None = None
    latency_ms: int | None = None


_FINISH_FIELDS = ("status", "result", "error", "error_status", "attempts", "usage", "cost_usd", "served_model",
                  "served_provider", "completed_at", "lease_expires_at")
_LEDGER, _KEYS = UsageEntry.__table__, ApiKey.__table__
# Built once, executed with parameters: this runs once per job, and building the statements each time
# (and the ORM's bulk-update machinery before that) measured as a third of its cost (see bench/).
_FINISH_JOB = (_JOBS.update()
               .where(_JOBS.c.id == bindparam("p_id"), _JOBS.c.status == IN_PROGRESS,
                      _JOBS.c.run_count == bindparam("p_run"))
               .values({name: bindparam("p_" + name) for name in _FINISH_FIELDS}))
_INSERT_LEDGER = _LEDGER.insert()
# Increment in SQL so concurrent jobs of one key never lose an update.
_ADD_SPEND = (_KEYS.update().where(_KEYS.c.id == bindparam("p_key"))
              .values(spend_usd=_KEYS.c.spend_usd + bindparam("p_cost", type_=_KEYS.c.spend_usd.type)))


def finish_job(session: Session, job: Job, run: int, outcome: Outcome) -> bool:
    """Store the outcome and bill it, in one transaction, only if this run still owns the job.

    The ledger's unique job_id is the last guard: a run that lost its lease and
    finishes late cannot bill a second time.
    """
    now = utcnow()
    values = dict(status=outcome.status, result=outcome.result, error=outcome.error,
                  error_status=outcome.error_status, attempts=outcome.attempts,
                  usage=outcome.usage.as_openai() if outcome.usage else None, cost_usd=outcome.cost_usd,
                  served_model=outcome.served_model, served_provider=outcome.served_provider,
                  completed_at=now, lease_expires_at=None)
    try:
        params = {"p_" + name: value for name, value in values.items()}
        conn = session.connection()  # the session's transaction, without its per-statement ORM work
        result = conn.execute(_FINISH_JOB, {**params, "p_id": job.id, "p_run": run})
        if result.rowcount != 1:
            session.rollback()
            return False
        if outcome.usage is not None and outcome.cost_usd is not None and outcome.prices is not None:
            conn.execute(_INSERT_LEDGER, dict(
                job_id=job.id, api_key_id=job.api_key_id, model_requested=job.model,
                model_served=outcome.served_model, provider_served=outcome.served_provider,
                prompt_tokens=outcome.usage.prompt_tokens, completion_tokens=outcome.usage.completion_tokens,
                cached_prompt_tokens=outcome.usage.cached_prompt_tokens, tokens_estimated=outcome.usage.estimated,
                input_cost_per_1m=outcome.prices.input_per_1m, output_cost_per_1m=outcome.prices.output_per_1m,
                cached_input_cost_per_1m=outcome.prices.cached_input_per_1m, cost_usd=outcome.cost_usd,
                latency_ms=outcome.latency_ms, outcome=outcome.status, created_at=now))
            conn.execute(_ADD_SPEND, {"p_key": job.api_key_id, "p_cost": outcome.cost_usd})
        session.commit()
    except IntegrityError:
        session.rollback()
        return False
    for name, value in values.items():
        setattr(job, name, value)
    return True


def get_job(session: Session, job_id: str) -> Job | None:
    """A job by id."""
    return session.get(Job, job_id)


def lost_jobs(session: Session, *, queued_grace_seconds: float, limit: int = 500) -> list[Job]:
    """Jobs whose task was lost: running with an expired lease, or queued (interactive) for too long."""
    now = utcnow()
    return list(session.scalars(
        select(Job).where(or_(
            and_(Job.status == IN_PROGRESS, Job.lease_expires_at < now),
            and_(Job.status == QUEUED, Job.queue == "interactive",
                 Job.created_at < now - timedelta(seconds=queued_grace_seconds)),
        )).limit(limit)))


def job_json(job: Job) -> dict:
    """The job object of API.md."""
    return {
        "id": job.id, "object": "job", "model": job.model, "status": job.status,
        "created_at": to_epoch(job.created_at), "started_at": to_epoch(job.started_at),
        "completed_at": to_epoch(job.completed_at), "metadata": job.meta or {}, "batch_id": job.batch_id,
        "result": job.result, "error": job.error, "usage": job.usage, "cost_usd": money(job.cost_usd),
        "attempts": job.attempts or [],
    }


def request_fingerprint(payload: dict) -> str:
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


def list_jobs(session: Session, api_key_id: str, *, status: str | None, limit: int,
              after: str | None, batch_id: str | None = None) -> tuple[list[Job], bool]:
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
        update(Job).where(Job.id == job.id, Job.status == QUEUED)
        .values(status=CANCELLED, completed_at=now, cancel_requested=True,
                error={"message": "The job was cancelled", "type": "invalid_request_error", "param": None,
                       "code": "cancelled"})
        .execution_options(synchronize_session=False))
    if result.rowcount == 1:
        session.refresh(job)
        return True
    if job.status == IN_PROGRESS:
        job.cancel_requested = True
    return False
