"""Finishing a job: store its outcome and bill it, in one transaction, exactly once."""

from __future__ import annotations

from sqlalchemy import bindparam
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from llmproxy.billing.ledger import Charge, record_charge
from llmproxy.jobs.outcome import Outcome
from llmproxy.jobs.states import JobStatus
from llmproxy.jobs.store import JOBS
from llmproxy.storage.models import Job
from llmproxy.storage.timestamps import utcnow

_FINISH_FIELDS = (
    "status",
    "result",
    "error",
    "error_status",
    "attempts",
    "usage",
    "cost_usd",
    "served_model",
    "served_provider",
    "completed_at",
    "lease_expires_at",
)

# Built once, executed with parameters: this runs once per job, and building the statements each time
# (and the ORM's bulk-update machinery before that) measured as a third of its cost (see bench/).
_FINISH_JOB = (
    JOBS.update()
    .where(
        JOBS.c.id == bindparam("p_id"),
        JOBS.c.status == JobStatus.IN_PROGRESS,
        JOBS.c.run_count == bindparam("p_run"),
    )
    .values({name: bindparam("p_" + name) for name in _FINISH_FIELDS})
)


def finish_job(session: Session, job: Job, run: int, outcome: Outcome) -> bool:
    """Store the outcome and bill it, in one transaction, only if this run still owns the job.

    The ledger's unique job_id is the last guard: a run that lost its lease and
    finishes late cannot bill a second time.
    """
    now = utcnow()
    values = dict(
        status=outcome.status,
        result=outcome.result,
        error=outcome.error,
        error_status=outcome.error_status,
        attempts=outcome.attempts,
        usage=outcome.usage.as_openai() if outcome.usage else None,
        cost_usd=outcome.cost_usd,
        served_model=outcome.served_model,
        served_provider=outcome.served_provider,
        completed_at=now,
        lease_expires_at=None,
    )
    try:
        params = {"p_" + name: value for name, value in values.items()}
        conn = session.connection()  # the session's transaction, without its per-statement ORM work
        result = conn.execute(_FINISH_JOB, {**params, "p_id": job.id, "p_run": run})
        if result.rowcount != 1:
            session.rollback()
            return False
        if outcome.usage is not None and outcome.cost_usd is not None and outcome.prices is not None:
            charge = Charge(
                job_id=job.id,
                api_key_id=job.api_key_id,
                model_requested=job.model,
                model_served=outcome.served_model,
                provider_served=outcome.served_provider,
                usage=outcome.usage,
                prices=outcome.prices,
                cost_usd=outcome.cost_usd,
                latency_ms=outcome.latency_ms,
                outcome=outcome.status,
                created_at=now,
            )
            record_charge(conn, charge)
        session.commit()
    except IntegrityError:
        session.rollback()
        return False
    for name, value in values.items():
        setattr(job, name, value)
    return True
