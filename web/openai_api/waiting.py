"""Serving a request its caller waits for (chat completions, embeddings): admit it, hand it to a worker as a
live job, and answer with the worker's result, its stream, a 202 when `Prefer: wait` runs out, or a 504."""

from __future__ import annotations

import time
from collections.abc import Callable

from flask import Response, g

from llmproxy import json_schema as js
from llmproxy.catalog.chains import ChainEntry, allowed_chain, cached_price_chain
from llmproxy.catalog.model_access import Model
from llmproxy.ids import new_job_id
from llmproxy.jobs import events
from llmproxy.jobs.events import FINAL_EVENTS
from llmproxy.jobs.live_job import LiveJob
from llmproxy.jobs.queues import Queue
from llmproxy.jobs.serialize import JOB_SCHEMA
from llmproxy.jobs.submission import IDEMPOTENCY_KEY_SCHEMA
from llmproxy.jsontypes import JSON
from llmproxy.keys.virtual_keys import KeyInfo
from llmproxy.limits import reservations
from llmproxy.limits.admission import admit, ratelimit_headers
from llmproxy.limits.parallel import Slot, parallel_cap
from web.context import db, release_connection, resources
from web.dispatch import enqueue_live
from web.openai_api.answers import final_response, still_running, sync_timeout
from web.openai_api.prefer import prefer_wait
from web.openai_api.sse import ChatChunks, StreamFormat, sse_response
from web.openapi.operation import json_reply
from web.slots import free_slot
from web.submission import submit_job

# What a route served this way declares (web.openapi): the headers it reads, and its 202.
WAITING_HEADERS = {"Prefer": js.string(), "Idempotency-Key": IDEMPOTENCY_KEY_SCHEMA}
STORED_REPLY = json_reply(
    "Stored as a job (`Prefer: respond-async`), or still running when `Prefer: wait=N` ran out.",
    JOB_SCHEMA,
    Location="Where to poll the job.",
)


def price_chain(body: JSON) -> list[ChainEntry]:
    """The chain of the body's model from the process's snapshots ([] when it names none, or an unknown one)."""
    model = body.get("model")
    return cached_price_chain(resources().snapshots, db(), model) if isinstance(model, str) and model else []


def first_of(chain: list[ChainEntry]) -> Callable[[str], Model | None]:
    """A model lookup answered by the chain's head (validation needs nothing else of the catalog)."""
    return lambda name: chain[0] if chain and chain[0].model == name else None


def respond_async(body: JSON, *, operation: str) -> Response:
    """`Prefer: respond-async`: the request is stored as a job, answered 202 with the job to poll."""
    response = submit_job(body, None, operation=operation)
    response.headers["Preference-Applied"] = "respond-async"
    return response


def serve_waiting(
    key: KeyInfo,
    body: JSON,
    chain: list[ChainEntry],
    prefer: dict[str, str],
    *,
    operation: str,
    stream: StreamFormat | None = None,
    job_id: str | None = None,
) -> Response:
    """Run a validated request as an interactive job and answer once it ends (or stream it as it runs, in `stream`'s
    format); `job_id` names the job (a fresh job id by default)."""
    settings = resources().settings
    wait = prefer_wait(prefer, ceiling=settings.sync_timeout_seconds)
    job_id = job_id or new_job_id()
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
        operation=operation,
    )
    release_connection()  # from here on the request needs no database: the job lives in Redis until it ends
    job = LiveJob(
        id=job_id,
        api_key_id=key.id,
        model=body["model"],
        queue=Queue.INTERACTIVE,
        request=body,
        stream=stream is not None,
        created_at_ms=int(time.time() * 1000),
        operation=operation,
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
    idle = settings.sync_timeout_seconds if stream is not None and wait is None else None
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
    return sse_response(job_id, first, followed, fmt=stream or ChatChunks(False), slot=held)
