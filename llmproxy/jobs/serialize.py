"""The job object as the API shows it."""

from __future__ import annotations

from llmproxy import json_schema as js
from llmproxy.errors import ERROR_OBJECT_SCHEMA
from llmproxy.jobs.states import JobStatus
from llmproxy.jobs.upstream_errors import public_attempts
from llmproxy.jsontypes import JSON
from llmproxy.operations import OPERATION_OF_URL, Operation
from llmproxy.storage.models import Job
from llmproxy.storage.money import money
from llmproxy.storage.timestamps import to_epoch

ATTEMPT_SCHEMA = js.obj(
    {
        "provider": js.nullable(js.string()),
        "model": js.nullable(js.string()),
        "outcome": js.nullable(js.string()),
        "status_code": js.nullable(js.integer()),
        "latency_ms": js.nullable(js.number()),
        "message": js.string(),
    },
    required=["provider", "model", "outcome", "status_code", "latency_ms"],
    extra=False,
)
JOB_SCHEMA = js.record(
    {
        "id": js.string(),
        "object": js.const("job"),
        "model": js.string(),
        "endpoint": js.enum(OPERATION_OF_URL),
        "status": js.enum(status.value for status in JobStatus),
        "created_at": js.epoch(),
        "started_at": js.epoch(),
        "completed_at": js.epoch(),
        "metadata": js.obj(extra=js.string()),
        "batch_id": js.nullable(js.string()),
        "result": js.nullable(js.obj()),  # the chat completion, or the embeddings list
        "error": js.nullable(ERROR_OBJECT_SCHEMA),
        "usage": js.nullable(js.obj()),
        "cost_usd": js.money(),
        "attempts": js.array(ATTEMPT_SCHEMA),
    }
)


def job_json(job: Job) -> JSON:
    """The job object of API.md."""
    return {
        "id": job.id,
        "object": "job",
        "model": job.model,
        "endpoint": Operation(job.operation).url,
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
