"""The job object as the API shows it."""

from __future__ import annotations

from llmproxy.jobs.upstream_errors import public_attempts
from llmproxy.jsontypes import JSON
from llmproxy.storage.models import Job
from llmproxy.storage.money import money
from llmproxy.storage.timestamps import to_epoch


def job_json(job: Job) -> JSON:
    """The job object of API.md."""
    return {
        "id": job.id,
        "object": "job",
        "model": job.model,
        "status": job.status,
        "created_at": to_epoch(job.created_at),
        "started_at": to_epoch(job.started_at),
        "completed_at": to_epoch(job.completed_at),
        "metadata": job.meta or {},
        "batch_id": job.batch_id,
        "result": job.result,
        "error": job.error,
        "usage": job.usage,
        "cost_usd": money(job.cost_usd),
        "attempts": public_attempts(job.attempts or []),
    }
