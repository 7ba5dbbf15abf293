"""Job polling: POST /v1/jobs, GET /v1/jobs[/{id}] (long-poll with ?wait=N), POST /v1/jobs/{id}/cancel."""

from __future__ import annotations

import time

from flask import Blueprint, jsonify, request
from sqlalchemy.exc import IntegrityError

from llmproxy.batches.store import get_own_batch
from llmproxy.chat.validation import validate_chat_request
from llmproxy.errors import ApiError, bad_request
from llmproxy.jobs import events as job_events
from llmproxy.jobs import store
from llmproxy.jobs.queues import Queue
from llmproxy.jobs.serialize import job_json
from llmproxy.jobs.states import FINAL_JOB_STATUSES, JobStatus
from llmproxy.jobs.store import find_by_idempotency_key, get_own_job, request_fingerprint
from web.auth import authenticate_client, current_key
from web.dispatch import enqueue
from web.jsonbody import json_body
from web.listing import limit_param, list_response
from web.services import services
from web.session import commit, db, release_connection

bp = Blueprint("jobs", __name__, url_prefix="/v1/jobs")
bp.before_request(lambda: authenticate_client() and None)

MAX_WAIT_SECONDS = 60
STATUSES = (JobStatus.QUEUED, JobStatus.IN_PROGRESS, JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)


def validate_metadata(metadata) -> dict | None:
    """OpenAI's metadata rules: at most 16 string pairs, keys ≤ 64 and values ≤ 512 characters."""
    if metadata is None:
        return None
    if (
        not isinstance(metadata, dict)
        or len(metadata) > 16
        or not all(
            isinstance(k, str) and isinstance(v, str) and len(k) <= 64 and len(v) <= 512 for k, v in metadata.items()
        )
    ):
        raise bad_request(
            "'metadata' must be an object of at most 16 string pairs (keys ≤ 64, values ≤ 512 characters)",
            param="metadata",
        )
    return metadata


def job_response(job, status: int = 200):
    """The job object, with Location for a 202."""
    response = jsonify(job_json(job))
    response.status_code = status
    response.headers["x-request-id"] = job.id
    if status == 202:
        response.headers["Location"] = f"/v1/jobs/{job.id}"
    return response


def submit_job(body: dict, metadata: dict | None, *, queue: str = Queue.BATCH):
    """Store a job for the caller (honouring Idempotency-Key), enqueue it, answer 202 with the job."""
    key = current_key()
    if body.get("stream"):
        raise bad_request("Streaming is not available for jobs; poll the job instead", param="stream")
    validate_chat_request(db(), key, body)
    idem = request.headers.get("Idempotency-Key")
    if idem is not None and not (0 < len(idem) <= 255):
        raise bad_request("Idempotency-Key must be 1 to 255 characters", code="invalid_idempotency_key")
    fingerprint = request_fingerprint({"body": body, "metadata": metadata})
    if idem:
        existing = find_by_idempotency_key(db(), key.id, idem)
        if existing is not None:
            return _replay(existing, fingerprint)
    try:
        job = store.create_job(
            db(), api_key=key, body=body, queue=queue, metadata=metadata, idempotency_key=idem, request_hash=fingerprint
        )
        commit()
    except IntegrityError:
        # Another request with the same Idempotency-Key won the insert.
        db().rollback()
        if idem:
            existing = find_by_idempotency_key(db(), key.id, idem)
            if existing is not None:
                return _replay(existing, fingerprint)
            raise ApiError(
                409, "A request with this Idempotency-Key is in flight; retry shortly", code="idempotency_conflict"
            ) from None
        raise
    enqueue(job.id, queue)
    return job_response(job, 202)


def _replay(existing, fingerprint: str):
    if existing.request_hash != fingerprint:
        raise ApiError(422, "This Idempotency-Key was used with a different request body", code="idempotency_mismatch")
    return job_response(existing, 202)


@bp.post("")
def create_job():
    """Submit a chat completion as a job: 202 + job + Location."""
    data = json_body()
    unknown = set(data) - {"body", "metadata"}
    if unknown:
        raise bad_request(f"Unknown field(s): {', '.join(sorted(unknown))}", code="unknown_field")
    body = data.get("body")
    if not isinstance(body, dict):
        raise bad_request("'body' must be a chat completion request object", code="missing_field", param="body")
    return submit_job(body, validate_metadata(data.get("metadata")))


def wait_seconds(raw: str | None) -> float:
    """The ?wait=N of a long poll, 0..60 seconds."""
    if raw is None:
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        raise bad_request("'wait' must be a number of seconds", param="wait") from None
    if not 0 <= value <= MAX_WAIT_SECONDS:
        raise bad_request(f"'wait' must be between 0 and {MAX_WAIT_SECONDS}", param="wait")
    return value


def wait_until_final(job_id: str, seconds: float) -> None:
    """Block on the job's Redis stream until its final event or the deadline (no database polling)."""
    deadline = time.monotonic() + seconds
    after = "0"
    client = services().redis
    while (remaining := deadline - time.monotonic()) > 0:
        events = job_events.read(client, job_id, after=after, block_ms=max(1, int(remaining * 1000)))
        for event in events:
            if event.kind == job_events.DONE:
                return
            after = event.id


@bp.get("/<job_id>")
def get_job(job_id):
    """The job; ?wait=N long-polls until it ends or N seconds pass."""
    key_id = current_key().id
    wait = wait_seconds(request.args.get("wait"))
    job = get_own_job(db(), key_id, job_id)
    if wait and job.status not in FINAL_JOB_STATUSES:
        release_connection()
        wait_until_final(job_id, wait)
        job = get_own_job(db(), key_id, job_id)
    return job_response(job)


@bp.get("")
def list_jobs():
    """This key's jobs, newest first: ?status=&batch_id=&limit=&after=."""
    status = request.args.get("status")
    if status is not None and status not in STATUSES:
        raise bad_request(f"'status' must be one of {', '.join(STATUSES)}", param="status")
    batch_id = request.args.get("batch_id")
    if batch_id is not None:
        get_own_batch(db(), current_key().id, batch_id)  # another key's batch is 404, like an unknown one
    page, has_more = store.list_jobs(
        db(), current_key().id, status=status, limit=limit_param(), after=request.args.get("after"), batch_id=batch_id
    )
    return list_response([job_json(j) for j in page], has_more)


@bp.post("/<job_id>/cancel")
def cancel_job(job_id):
    """Cancel a queued job now; ask a running one to stop."""
    job = get_own_job(db(), current_key().id, job_id)
    if job.status not in FINAL_JOB_STATUSES and not store.cancel_job(db(), job):
        job_events.request_cancel(services().redis, job.id)
    commit()
    if job.status == JobStatus.CANCELLED:
        job_events.publish(
            services().redis, job.id, job_events.DONE, {"status": JobStatus.CANCELLED}, run=job.run_count
        )
    return job_response(job)
