"""Job polling: POST /v1/jobs, GET /v1/jobs[/{id}] (long-poll with ?wait=N), POST /v1/jobs/{id}/cancel."""

from __future__ import annotations

import redis
from flask import Blueprint, Response, request

from llmproxy import json_schema as js
from llmproxy.batches.store import get_own_batch
from llmproxy.chat.validation import chat_request_schema
from llmproxy.embeddings.validation import embedding_request_schema
from llmproxy.errors import bad_request
from llmproxy.ids import new_id
from llmproxy.jobs import events, live
from llmproxy.jobs.lookup import as_they_are_now, find_own_job
from llmproxy.jobs.queues import Queue
from llmproxy.jobs.serialize import JOB_SCHEMA, job_json
from llmproxy.jobs.states import FINAL_JOB_STATUSES, JobStatus
from llmproxy.jobs.store import cancel_job as cancel_queued_job
from llmproxy.jobs.store import list_jobs as list_own_jobs
from llmproxy.jobs.submission import IDEMPOTENCY_KEY_SCHEMA, job_body, job_schema
from llmproxy.limits.parallel import Slot, parallel_cap
from llmproxy.limits.reservations import release
from llmproxy.responses.validation import response_request_schema
from llmproxy.storage.models import Job
from web.auth import current_key, require_client
from web.context import commit, db, release_connection, resources
from web.jsonbody import json_body
from web.listing import limit_param, limit_schema, list_response, list_schema
from web.openapi.operation import Auth, json_reply, operation
from web.slots import slot_held
from web.submission import job_response, submit_job

bp = Blueprint("jobs", __name__, url_prefix="/v1/jobs")
bp.before_request(require_client)

MAX_WAIT_SECONDS = 60
WAIT_SCHEMA = js.number(0, MAX_WAIT_SECONDS)
_THE_JOB = {200: json_reply("The job.", JOB_SCHEMA)}


@bp.post("")
@operation(
    auth=Auth.KEY,
    body=job_schema(chat_request_schema(), embedding_request_schema(), response_request_schema()),
    headers={"Idempotency-Key": IDEMPOTENCY_KEY_SCHEMA},
    replies={202: json_reply("Stored and queued.", JOB_SCHEMA, Location="Where to poll the job.")},
)
def create_job() -> Response:
    """Submit a chat completion (or by `endpoint`, embeddings or a response) as a job: 202 + job + Location."""
    operation, body, metadata = job_body(json_body())
    return submit_job(body, metadata, operation=operation)


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


@bp.get("/<job_id>")
@operation(auth=Auth.KEY, query={"wait": WAIT_SCHEMA}, replies=_THE_JOB)
def get_job(job_id: str) -> Response:
    """The job; ?wait=N long-polls until it ends or N seconds pass."""
    key_id = current_key().id
    wait = wait_seconds(request.args.get("wait"))
    client = resources().redis
    job = find_own_job(db(), client, key_id, job_id)
    if wait and job.status not in FINAL_JOB_STATUSES:
        release_connection()
        # A long-poll holds a web thread like a synchronous wait: it counts among the key's requests in flight.
        with slot_held(Slot.for_wait(key_id, new_id("poll"), wait), parallel_cap(current_key(), resources().settings)):
            events.wait_for_end(client, job_id, wait)
        job = find_own_job(db(), client, key_id, job_id)
    return job_response(job)


@bp.get("")
@operation(
    auth=Auth.KEY,
    query={
        "status": js.enum(status.value for status in JobStatus),
        "batch_id": js.string(),
        "limit": limit_schema(),
        "after": js.string(),
    },
    replies={200: json_reply("This key's jobs, newest first.", list_schema(JOB_SCHEMA))},
)
def list_jobs() -> Response:
    """This key's jobs, newest first: ?status=&batch_id=&limit=&after=."""
    status = request.args.get("status")
    if status is not None and status not in set(JobStatus):
        raise bad_request(f"'status' must be one of {', '.join(JobStatus)}", param="status")
    batch_id = request.args.get("batch_id")
    if batch_id is not None:
        get_own_batch(db(), current_key().id, batch_id)  # another key's batch is 404, like an unknown one
    page, has_more = list_own_jobs(
        db(), current_key().id, status=status, limit=limit_param(), after=request.args.get("after"), batch_id=batch_id
    )
    # Rows still in flight are shown as they are now; one that has moved on from the status asked for is left out.
    jobs = [job for job in as_they_are_now(resources().redis, page) if status is None or job.status == status]
    return list_response([job_json(j) for j in jobs], has_more, last_id=page[-1].id if page else None)


@bp.post("/<job_id>/cancel")
@operation(auth=Auth.KEY, replies=_THE_JOB)
def cancel_job(job_id: str) -> Response:
    """Cancel a queued job now; ask a running one to stop."""
    job = find_own_job(db(), resources().redis, current_key().id, job_id)
    cancel_own_job(job)
    return job_response(find_own_job(db(), resources().redis, job.api_key_id, job.id))


def cancel_own_job(job: Job) -> None:
    """Cancel the caller's job if it has not ended: a queued one now, a running one by asking its worker."""
    client = resources().redis
    if job.status in FINAL_JOB_STATUSES:
        return
    stored = job.queue != Queue.INTERACTIVE  # an async job or a batch line: it has a row
    had = live.cancel(client, job.id, stored=stored)
    cancelled_now = had == "queued"
    if had == "missing" and stored:
        # No worker has claimed it, and now none can (the cancel left a tombstone): cancel its row.
        cancelled_now = cancel_queued_job(db(), job)
        commit()
        if cancelled_now:
            events.publish(client, job.id, events.Cancelled.job(), run=job.run_count)  # wake its long-polls
    if cancelled_now:
        try:
            release(client, key_id=job.api_key_id, request_id=job.id)
        except redis.RedisError:  # the reservation expires on its own; the cancel is done
            pass
