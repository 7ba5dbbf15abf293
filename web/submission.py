"""Submitting a request as a job (POST /v1/jobs and `Prefer: respond-async`): store it, enqueue it, answer 202."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Response, jsonify, request
from sqlalchemy.exc import IntegrityError

from llmproxy.errors import bad_request
from llmproxy.ids import new_job_id
from llmproxy.jobs.queues import Queue
from llmproxy.jobs.serialize import job_json
from llmproxy.jobs.store import create_job, request_fingerprint
from llmproxy.jobs.submission import idempotency_conflict, replayed_job, validate_idempotency_key
from llmproxy.limits.queued import admit_submission, forget_queued
from llmproxy.operations import Operation, validate_request
from llmproxy.storage.models import Job
from web.auth import current_key
from web.context import commit, db, resources
from web.dispatch import enqueue


def job_response(job: Job, status: int = 200) -> Response:
    """The job object, with Location for a 202."""
    response = jsonify(job_json(job))
    response.status_code = status
    response.headers["x-request-id"] = job.id
    if status == 202:
        response.headers["Location"] = f"/v1/jobs/{job.id}"
    return response


def submit_job(
    body: dict[str, Any],
    metadata: dict[str, str] | None,
    *,
    operation: str,
    queue: Queue = Queue.BATCH,
    job_id: str | None = None,
    reply: Callable[[Job, int], Response] = job_response,
) -> Response:
    """Store a job for the caller (honouring Idempotency-Key), enqueue it, answer 202 with the job.

    `job_id` names it (a fresh job id by default); `reply` answers with it and the status (a Response object
    for a background response)."""
    key = current_key()
    if body.get("stream"):
        raise bad_request("Streaming is not available for jobs; poll the job instead", param="stream")
    validate_request(operation, db(), key, body)
    idem = validate_idempotency_key(request.headers.get("Idempotency-Key"))
    # The same body sent to another API is another request; chat keeps the fingerprint it always had.
    described = {"body": body, "metadata": metadata} | ({} if operation == Operation.CHAT else {"operation": operation})
    fingerprint = request_fingerprint(described)
    if idem and (existing := replayed_job(db(), api_key_id=key.id, idempotency_key=idem, fingerprint=fingerprint)):
        return reply(existing, 202)
    # Budget left and room among the key's queued jobs (RPM/TPM wait in the workers): refused, nothing is stored.
    job_id = job_id or new_job_id()
    admit_submission(resources().redis, key=key, job_ids=[job_id], settings=resources().settings)
    try:
        job = create_job(
            db(),
            api_key=key,
            body=body,
            queue=queue,
            operation=operation,
            metadata=metadata,
            idempotency_key=idem,
            request_hash=fingerprint,
            job_id=job_id,
        )
        commit()
    except IntegrityError:
        # Another request with the same Idempotency-Key won the insert.
        db().rollback()
        forget_queued(resources().redis, key.id, [job_id])
        if idem:
            existing = replayed_job(db(), api_key_id=key.id, idempotency_key=idem, fingerprint=fingerprint)
            if existing is not None:
                return reply(existing, 202)
            raise idempotency_conflict() from None
        raise
    except Exception:
        forget_queued(resources().redis, key.id, [job_id])
        raise
    enqueue(job.id, queue)
    return reply(job, 202)
