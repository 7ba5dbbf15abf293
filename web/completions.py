"""POST /v1/chat/completions: store the job, enqueue it, wait for the worker's hand-off."""

from __future__ import annotations

import json
import time

from flask import Blueprint, Response, g, jsonify, request, stream_with_context

from llmproxy.catalog.chains import ChainEntry, load_chain
from llmproxy.chat.validation import validate_chat_request, wants_usage_chunk
from llmproxy.errors import ApiError, bad_request
from llmproxy.ids import new_job_id
from llmproxy.jobs import events as job_events
from llmproxy.jobs.queues import Queue
from llmproxy.jobs.states import JobStatus
from llmproxy.jobs.store import create_job, get_own_job
from llmproxy.limits import reservations
from llmproxy.limits.admission import admit, ratelimit_headers
from web.auth import authenticate_client, current_key
from web.dispatch import enqueue
from web.jsonbody import json_body
from web.services import services
from web.session import commit, db, release_connection

bp = Blueprint("completions", __name__)
bp.before_request(lambda: authenticate_client() and None)


def model_chain(name) -> list[ChainEntry]:
    """The model's enabled chain from this process's snapshots ([] for an unknown or disabled model)."""
    if not isinstance(name, str) or not name:
        return []
    # Prices and names only: the web never needs (or caches) a provider's key.
    return services().snapshots.get(("prices", name), lambda: load_chain(db(), name, encryption_key=None))


def result_headers(job_id: str, done: dict | None = None) -> dict[str, str]:
    """The x-request-id, x-llmproxy-* and x-ratelimit-* headers of a finished (or started) job."""
    headers = {"x-request-id": job_id, **g.get("ratelimit_headers", {})}
    if done:
        if done.get("served_provider"):
            headers["x-llmproxy-provider"] = done["served_provider"]
            headers["x-llmproxy-model"] = done["served_model"]
        if done.get("cost_usd") is not None:
            headers["x-llmproxy-cost-usd"] = done["cost_usd"]
        headers["x-llmproxy-attempts"] = str(done.get("attempts", 0))
    return headers


@bp.post("/v1/chat/completions")
@bp.post("/chat/completions")
def chat_completions():
    """OpenAI's chat completions, served through the queue (streamed or not)."""
    key = current_key()
    body = json_body()
    prefer = parse_prefer(request.headers.get("Prefer", ""))
    if "respond-async" in prefer:
        from web.jobs_api import submit_job

        response = submit_job(body, None)
        response.headers["Preference-Applied"] = "respond-async"
        return response
    settings = services().settings
    chain = model_chain(body.get("model"))
    validate_chat_request(db(), key, body, lookup=lambda name: chain[0] if chain and chain[0].model == name else None)
    stream = bool(body.get("stream"))
    wait = prefer_wait(prefer)
    job_id = new_job_id()
    admission = admit(
        db(),
        services().redis,
        key=key,
        request_id=job_id,
        body=body,
        default_max_tokens=settings.default_max_tokens,
        chain=chain,
    )
    try:
        create_job(db(), api_key=key, body=body, queue=Queue.INTERACTIVE, stream=stream, job_id=job_id)
        commit()
        enqueue(job_id, Queue.INTERACTIVE)
    except Exception:
        if admission is not None:
            reservations.release(services().redis, key_id=key.id, request_id=job_id)
        raise
    release_connection()
    g.ratelimit_headers = ratelimit_headers(admission)
    deadline = time.monotonic() + (wait if wait is not None else settings.sync_timeout_seconds)
    events = follow(job_id, deadline, idle=settings.sync_timeout_seconds if stream and wait is None else None)
    first = next(events)
    if first is None:
        if wait is not None:
            return _still_running(job_id, wait)
        return _sync_timeout(job_id)
    if first.kind == job_events.DONE:
        return _final_response(job_id, first.data)
    return _sse_response(job_id, first, events, wants_usage_chunk(body))


def follow(job_id: str, deadline: float, *, idle: float | None = None):
    """The job's events as they arrive (read in batches); yields None once if the deadline passes first.

    With `idle`, each event moves the deadline to `idle` seconds later: a stream
    is cut only when it stalls, never while chunks flow.
    """
    client = services().redis
    after = "0"
    while (remaining := deadline - time.monotonic()) > 0:
        for event in job_events.read(client, job_id, after=after, block_ms=max(1, int(min(remaining, 5) * 1000))):
            after = event.id
            if idle is not None:
                deadline = time.monotonic() + idle
            yield event
    yield None


def parse_prefer(header: str) -> dict[str, str]:
    """RFC 7240 preferences, e.g. `respond-async, wait=10` → {"respond-async": "", "wait": "10"}."""
    prefs = {}
    for part in header.replace(";", ",").split(","):
        name, _, value = part.strip().partition("=")
        if name:
            prefs[name.lower()] = value.strip().strip('"')
    return prefs


def prefer_wait(prefer: dict[str, str]) -> float | None:
    """Seconds of `Prefer: wait=N` (capped by the sync timeout), or None."""
    if "wait" not in prefer:
        return None
    try:
        wait = float(prefer["wait"])
    except ValueError:
        raise bad_request("Prefer: wait must be a number of seconds", param="Prefer") from None
    return max(0.0, min(wait, services().settings.sync_timeout_seconds))


def _still_running(job_id: str, wait: float):
    """202 with the job after `Prefer: wait=N` ran out; the job goes on."""
    from web.jobs_api import job_response

    response = job_response(get_own_job(db(), current_key().id, job_id), 202)
    response.headers["Preference-Applied"] = f"wait={wait:g}"
    response.headers.update(g.get("ratelimit_headers", {}))
    return response


def _sync_timeout(job_id: str):
    raise ApiError(
        504,
        f"The request did not finish in time; it is still running as job {job_id}. Read it at /v1/jobs/{job_id}.",
        type="timeout",
        code="sync_timeout",
        headers=result_headers(job_id),
    )


def _final_response(job_id: str, done: dict):
    headers = result_headers(job_id, done)
    if done["status"] == JobStatus.COMPLETED:
        response = jsonify(done["result"])
    else:
        response = jsonify({"error": done["error"]})
        response.status_code = done.get("error_status") or 502
    response.headers.update(headers)
    return response


def _sse(payload: dict | str) -> str:
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {data}\n\n"


def _relay(chunk: dict, include_usage: bool) -> str | None:
    """The chunk as the caller asked for it (usage only with stream_options.include_usage)."""
    if not include_usage:
        if not chunk.get("choices") and chunk.get("usage"):
            return None
        chunk.pop("usage", None)
    return _sse(chunk)


def _sse_response(job_id: str, first: job_events.Event, events, include_usage: bool):
    client = services().redis

    def generate():
        event, run, finished = first, first.run, False
        try:
            while True:
                if event is None:
                    # Stalled: nobody can resume an SSE stream, so stop the job too (finally below).
                    yield _sse(
                        {
                            "error": {
                                "message": "The stream stalled: no data within the sync timeout; "
                                f"job {job_id} was stopped",
                                "type": "timeout",
                                "param": None,
                                "code": "sync_timeout",
                            }
                        }
                    )
                    return
                if event.run != run:
                    yield _sse(
                        {
                            "error": {
                                "message": "The worker serving this stream was lost",
                                "type": "upstream_error",
                                "param": None,
                                "code": "stream_interrupted",
                            }
                        }
                    )
                    finished = True
                    return
                if event.kind == job_events.CHUNK:
                    line = _relay(event.data, include_usage)
                    if line:
                        yield line
                else:
                    finished = True
                    if event.data["status"] == JobStatus.COMPLETED:
                        yield _sse("[DONE]")
                    else:
                        yield _sse({"error": event.data.get("error")})
                    return
                event = next(events)
        finally:
            if not finished:
                # The caller went away: ask the worker to stop the upstream call.
                job_events.request_cancel(client, job_id)

    headers = {**result_headers(job_id), "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    if first.meta:
        headers["x-llmproxy-provider"] = first.meta["provider"]
        headers["x-llmproxy-model"] = first.meta["model"]
    return Response(stream_with_context(generate()), mimetype="text/event-stream", headers=headers)
