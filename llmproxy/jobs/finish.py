"""Job lifecycle: create, claim (idempotent), finish with billing exactly once, and find lost jobs."""

from __future__ import annotations

from sqlalchemy import bindparam
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from llmproxy.billing.ledger import _ADD_SPEND, _INSERT_LEDGER
from llmproxy.jobs.outcome import Outcome
from llmproxy.jobs.states import JobStatus
from llmproxy.jobs.store import _JOBS
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
    _JOBS.update()
    .where(
        _JOBS.c.id == bindparam("p_id"),
        _JOBS.c.status == JobStatus.IN_PROGRESS,
        _JOBS.c.run_count == bindparam("p_run"),
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
            conn.execute(
                _INSERT_LEDGER,
                dict(
                    job_id=job.id,
                    api_key_id=job.api_key_id,
                    model_requested=job.model,
                    model_served=outcome.served_model,
                    provider_served=outcome.served_provider,
                    prompt_tokens=outcome.usage.prompt_tokens,
                    completion_tokens=outcome.usage.completion_tokens,
                    cached_prompt_tokens=outcome.usage.cached_prompt_tokens,
                    tokens_estimated=outcome.usage.estimated,
                    input_cost_per_1m=outcome.prices.input_per_1m,
                    output_cost_per_1m=outcome.prices.output_per_1m,
                    cached_input_cost_per_1m=outcome.prices.cached_input_per_1m,
                    cost_usd=outcome.cost_usd,
                    latency_ms=outcome.latency_ms,
                    outcome=outcome.status,
                    created_at=now,
                ),
            )
            conn.execute(_ADD_SPEND, {"p_key": job.api_key_id, "p_cost": outcome.cost_usd})
        session.commit()
    except IntegrityError:
        session.rollback()
        return False
    for name, value in values.items():
        setattr(job, name, value)
    return True
