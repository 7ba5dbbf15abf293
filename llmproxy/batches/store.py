"""Batch lifecycle: create (as `validating`), read, list (validation: validation.py; cancel and expiry: cancel.py).

A batch's lines are jobs of the `batch` queue (jobs.batch_id, jobs.custom_id). While it runs,
its request counts are read from the jobs table, so nothing has to be incremented (and nothing
can be lost) when many workers finish lines at once. The end of a batch (finalizing, result
files, final counts) is in llmproxy.batches.results.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from llmproxy import json_schema as js
from llmproxy.batches.files import FilePurpose, get_own_file
from llmproxy.batches.input_file import OUTPUT_EXPIRY_SECONDS, validate_output_expiry
from llmproxy.batches.states import FINAL_BATCH_STATUSES, BatchStatus
from llmproxy.config import Settings
from llmproxy.errors import bad_request, not_found
from llmproxy.ids import new_id
from llmproxy.jobs.states import JobStatus
from llmproxy.jsontypes import JSON
from llmproxy.keys.virtual_keys import KeyInfo
from llmproxy.operations import OPERATION_OF_URL
from llmproxy.storage.models import ApiKey, Batch, Job, UsageEntry
from llmproxy.storage.pagination import page_after
from llmproxy.storage.timestamps import to_epoch, utcnow
from llmproxy.validation import validate_metadata_schema

ENDPOINTS = tuple(OPERATION_OF_URL)  # every API a job can serve: chat completions, embeddings, responses
COMPLETION_WINDOWS = ("24h",)
# What POST /v1/batches takes.
BATCH_REQUEST_SCHEMA = js.obj(
    {
        "input_file_id": js.string(minLength=1),
        "endpoint": js.enum(ENDPOINTS),
        "completion_window": js.enum(COMPLETION_WINDOWS),
        "metadata": validate_metadata_schema(),
        "output_expires_after": js.nullable(
            js.record({"anchor": js.const("created_at"), "seconds": js.integer(*OUTPUT_EXPIRY_SECONDS)})
        ),
    },
    required=["input_file_id", "endpoint", "completion_window"],
    extra=False,
)


def create_batch(
    session: Session,
    *,
    key: ApiKey | KeyInfo,
    input_file_id: str,
    endpoint: str,
    completion_window: str,
    metadata: dict[str, str] | None,
    settings: Settings,
    output_expires_after: object = None,
) -> Batch:
    """Store a new batch as `validating` after the cheap checks (fields, the file is the key's and for batches).

    Its lines are read and checked off the web thread (llmproxy.batches.validation): the caller commits,
    then sends the batch to a worker to validate.
    """
    if endpoint not in ENDPOINTS:
        raise bad_request(
            f"'endpoint' must be one of {', '.join(ENDPOINTS)}", code="invalid_endpoint", param="endpoint"
        )
    if completion_window not in COMPLETION_WINDOWS:
        raise bad_request(
            "'completion_window' must be '24h'", code="invalid_completion_window", param="completion_window"
        )
    output_expires_seconds = validate_output_expiry(output_expires_after)
    source = get_own_file(session, key.id, input_file_id)
    if source.purpose != FilePurpose.BATCH:
        raise bad_request("The input file must have purpose 'batch'", code="invalid_input_file", param="input_file_id")
    now = utcnow()
    batch = Batch(
        id=new_id("batch"),
        api_key_id=key.id,
        endpoint=endpoint,
        input_file_id=source.id,
        completion_window=completion_window,
        status=BatchStatus.VALIDATING,
        total=0,
        completed=0,
        failed=0,
        meta=metadata,
        created_at=now,
        output_expires_seconds=output_expires_seconds,
        expires_at=now + timedelta(seconds=settings.batch_completion_window_seconds),
    )
    session.add(batch)
    session.flush()
    return batch


def get_own_batch(session: Session, api_key_id: str, batch_id: str) -> Batch:
    """The caller's batch; another key's batch is 404, like an unknown one."""
    batch = session.get(Batch, batch_id)
    if batch is None or batch.api_key_id != api_key_id:
        raise not_found("batch")
    return batch


def list_batches(session: Session, api_key_id: str, *, limit: int, after: str | None) -> tuple[list[Batch], bool]:
    """This key's batches, newest first, after the cursor batch; returns (page, has_more)."""
    query = select(Batch).where(Batch.api_key_id == api_key_id)
    cursor = get_own_batch(session, api_key_id, after) if after else None
    return page_after(session, query, Batch, cursor=cursor, limit=limit)


def line_counts(session: Session, batch_id: str) -> dict[str, int]:
    """How many of the batch's lines are in each job status, read from the jobs table."""
    rows = session.execute(select(Job.status, func.count()).where(Job.batch_id == batch_id).group_by(Job.status))
    return {status: count for status, count in rows}  # noqa: C416 - a Result has keys(): dict() would misread it


def line_usage(session: Session, batch_id: str) -> JSON:
    """OpenAI's batch `usage`: the tokens the ledger billed for the batch's lines so far."""
    prompt, completion, cached = session.execute(
        select(
            func.coalesce(func.sum(UsageEntry.prompt_tokens), 0),
            func.coalesce(func.sum(UsageEntry.completion_tokens), 0),
            func.coalesce(func.sum(UsageEntry.cached_prompt_tokens), 0),
        )
        .join(Job, Job.id == UsageEntry.job_id)
        .where(Job.batch_id == batch_id)
    ).one()
    prompt, completion, cached = int(prompt), int(completion), int(cached)
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + completion,
    }


def request_counts(session: Session, batch: Batch) -> dict[str, int]:
    """OpenAI's request_counts: live from the lines while the batch runs, as fixed at its end afterwards."""
    if batch.status in FINAL_BATCH_STATUSES:
        return {"total": batch.total, "completed": batch.completed, "failed": batch.failed}
    counts = line_counts(session, batch.id)
    return {
        "total": batch.total,
        "completed": counts.get(JobStatus.COMPLETED, 0),
        "failed": counts.get(JobStatus.FAILED, 0),
    }


_TOKENS = js.integer(0)
BATCH_SCHEMA = js.record(
    {
        "id": js.string(),
        "object": js.const("batch"),
        "endpoint": js.string(),
        "errors": js.nullable(js.obj()),
        "input_file_id": js.string(),
        "completion_window": js.string(),
        "status": js.enum(status.value for status in BatchStatus),
        "output_file_id": js.nullable(js.string()),
        "error_file_id": js.nullable(js.string()),
        **{
            f"{moment}_at": js.epoch()
            for moment in (
                "created",
                "in_progress",
                "expires",
                "finalizing",
                "completed",
                "failed",
                "expired",
                "cancelling",
                "cancelled",
            )
        },
        "request_counts": js.record({"total": _TOKENS, "completed": _TOKENS, "failed": _TOKENS}),
        "metadata": js.nullable(js.obj(extra=js.string())),
        "usage": js.record(
            {
                "input_tokens": _TOKENS,
                "input_tokens_details": js.record({"cached_tokens": _TOKENS}),
                "output_tokens": _TOKENS,
                "output_tokens_details": js.record({"reasoning_tokens": _TOKENS}),
                "total_tokens": _TOKENS,
            }
        ),
    }
)


def batch_json(session: Session, batch: Batch) -> JSON:
    """OpenAI's batch object."""
    return {
        "id": batch.id,
        "object": "batch",
        "endpoint": batch.endpoint,
        "errors": batch.errors,
        "input_file_id": batch.input_file_id,
        "completion_window": batch.completion_window,
        "status": batch.status,
        "output_file_id": batch.output_file_id,
        "error_file_id": batch.error_file_id,
        "created_at": to_epoch(batch.created_at),
        "in_progress_at": to_epoch(batch.in_progress_at),
        "expires_at": to_epoch(batch.expires_at),
        "finalizing_at": to_epoch(batch.finalizing_at),
        "completed_at": to_epoch(batch.completed_at),
        "failed_at": to_epoch(batch.failed_at),
        "expired_at": to_epoch(batch.expired_at) if batch.status == BatchStatus.EXPIRED else None,
        "cancelling_at": to_epoch(batch.cancelling_at),
        "cancelled_at": to_epoch(batch.cancelled_at),
        "request_counts": request_counts(session, batch),
        "metadata": batch.meta,
        "usage": batch.usage
        if batch.status in FINAL_BATCH_STATUSES and batch.usage is not None
        else line_usage(session, batch.id),
    }
