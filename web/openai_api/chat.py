"""POST /v1/chat/completions: admit, store the job, enqueue it, wait for the worker's hand-off."""

from __future__ import annotations

import time

from flask import Blueprint, Response, g, request

from llmproxy import json_schema as js
from llmproxy.catalog.chains import allowed_chain, cached_price_chain
from llmproxy.chat.stream_assembly import CHAT_COMPLETION_SCHEMA
from llmproxy.chat.validation import chat_request_schema, validate_chat_request, wants_usage_chunk
from llmproxy.ids import new_job_id
from llmproxy.jobs import events
from llmproxy.jobs.events import FINAL_EVENTS
from llmproxy.jobs.live_job import LiveJob
from llmproxy.jobs.queues import Queue
from llmproxy.jobs.serialize import JOB_SCHEMA
from llmproxy.jobs.submission import IDEMPOTENCY_KEY_SCHEMA
from llmproxy.limits import reservations
from llmproxy.limits.admission import admit, ratelimit_headers
from llmproxy.limits.parallel import Slot, parallel_cap
from web.auth import current_key, require_client
from web.context import db, release_connection, resources
from web.dispatch import enqueue_live
from web.jsonbody import json_body
from web.openai_api.answers import final_response, still_running, sync_timeout
from web.openai_api.prefer import parse_prefer, prefer_wait
from web.openai_api.sse import sse_response
from web.openapi.operation import Auth, Reply, json_reply, operation
from web.slots import free_slot
from web.submission import submit_job

bp = Blueprint("completions", __name__)
bp.before_request(require_client)


@bp.post("/v1/chat/completions")
@bp.post("/chat/completions")
@operation(
    auth=Auth.KEY,
    body=chat_request_schema(),
    headers={"Prefer": js.string(), "Idempotency-Key": IDEMPOTENCY_KEY_SCHEMA},
    replies={
        200: Reply(
            "The chat completion; with `stream: true`, server-sent `chat.completion.chunk` events.",
            {"application/json": CHAT_COMPLETION_SCHEMA, "text/event-stream": js.string()},
            {"x-request-id": "The job that served the request."},
        ),
        202: json_reply(
            "Stored as a job (`Prefer: respond-async`), or still running when `Prefer: wait=N` ran out.",
            JOB_SCHEMA,
            Location="Where to poll the job.",
        ),
    },
)
def chat_completions() -> Response:
    """OpenAI's chat completions, served through the queue (streamed or not)."""
    key = current_key()
    body = json_body()
    prefer = parse_prefer(request.headers.get("Prefer", ""))
    if "respond-async" in prefer:
        response = submit_job(body, None)
        response.headers["Preference-Applied"] = "respond-async"
        return response
    settings = resources().settings
    model = body.get("model")
    chain = cached_price_chain(resources().snapshots, db(), model) if isinstance(model, str) and model else []
    validate_chat_request(db(), key, body, lookup=lambda name: chain[0] if chain and chain[0].model == name else None)
    stream = bool(body.get("stream"))
    wait = prefer_wait(prefer, ceiling=settings.sync_timeout_seconds)
    job_id = new_job_id()
    parallel = parallel_cap(key, settings)
    # Under a cap the request holds a slot while it waits (streams too): its job's finish frees it, else see below.
    slot = Slot.for_wait(key.id, job_id, wait if wait is not None else settings.sync_timeout_seconds)
    admission = admit(
        resources().redis,
        key=key,
        request_id=job_id,
        body=body,
        chain=allowed_chain(chain, key.allowed_models),
        default_max_tokens=settings.default_max_tokens,
        parallel=parallel,
        slot_seconds=slot.seconds,
        reservation_ttl=settings.reservation_ttl_seconds,
    )
    release_connection()  # from here on the request needs no database: the job lives in Redis until it ends
    job = LiveJob(
        id=job_id,
        api_key_id=key.id,
        model=body["model"],
        queue=Queue.INTERACTIVE,
        request=body,
        stream=stream,
        created_at_ms=int(time.time() * 1000),
    )
    try:
        enqueue_live(job)
    except Exception:
        if admission is not None:
            reservations.release(resources().redis, key_id=key.id, request_id=job_id)
        raise
    g.ratelimit_headers = ratelimit_headers(admission)
    held = slot if parallel is not None else None
    deadline = time.monotonic() + (wait if wait is not None else settings.sync_timeout_seconds)
    idle = settings.sync_timeout_seconds if stream and wait is None else None
    followed = events.follow(resources().redis, job_id, deadline, idle=idle)
    try:
        first = next(followed)
    except BaseException:
        free_slot(held)
        raise
    if first is None:
        free_slot(held)  # the caller stops waiting; the job goes on
        if wait is not None:
            return still_running(job_id, wait)
        raise sync_timeout(job_id)
    if isinstance(first.event, FINAL_EVENTS):
        return final_response(job_id, first.event)  # the job's finish (or its cancel) freed the slot
    return sse_response(job_id, first, followed, include_usage=wants_usage_chunk(body), slot=held)
