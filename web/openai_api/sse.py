"""A streamed chat completion: the worker's chunks relayed as Server-Sent Events, ending with [DONE] or an error."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from typing import Any

from flask import Response, stream_with_context

from llmproxy.errors import error_body
from llmproxy.jobs import events
from llmproxy.jobs.events import Chunk, Done, Received
from llmproxy.jobs.states import JobStatus
from llmproxy.limits.parallel import Slot
from web.context import resources
from web.openai_api.answers import result_headers
from web.slots import free_slot, renew


def sse(payload: dict[str, Any] | str) -> str:
    """One SSE `data:` line."""
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {data}\n\n"


def relay(chunk: dict[str, Any], include_usage: bool) -> str | None:
    """The chunk as the caller asked for it (usage only with stream_options.include_usage)."""
    if not include_usage:
        if not chunk.get("choices") and chunk.get("usage"):
            return None
        chunk.pop("usage", None)
    return sse(chunk)


def sse_response(
    job_id: str, first: Received, rest: Iterator[Received | None], *, include_usage: bool, slot: Slot | None = None
) -> Response:
    """Relay the job's events from its first chunk on; a caller who goes away stops the job.

    `slot` is the request's parallel slot, if it holds one: the job's final event means its finish freed it;
    any other way out frees it here, and a stream outliving its deadline renews it.
    """
    client = resources().redis

    def generate() -> Iterator[str]:
        received: Received | None = first
        finished = freed = False
        renew_at = time.monotonic() + slot.seconds / 2 if slot is not None else math.inf
        try:
            while True:
                if received is None:
                    # Stalled: nobody can resume an SSE stream, so stop the job too (finally below).
                    message = f"The stream stalled: no data within the sync timeout; job {job_id} was stopped"
                    yield sse(error_body(message, type="timeout", code="sync_timeout"))
                    return
                if received.run != first.run:
                    finished = True
                    message = "The worker serving this stream was lost"
                    yield sse(error_body(message, type="upstream_error", code="stream_interrupted"))
                    return
                event = received.event
                if isinstance(event, Chunk):
                    line = relay(event.data, include_usage)
                    if line:
                        yield line
                else:
                    finished = freed = True
                    if isinstance(event, Done) and event.status == JobStatus.COMPLETED:
                        yield sse("[DONE]")
                    else:
                        yield sse({"error": event.error})
                    return
                if slot is not None and time.monotonic() >= renew_at:
                    renew(slot)
                    renew_at = time.monotonic() + slot.seconds / 2
                received = next(rest)
        finally:
            if not finished:
                # The caller went away: ask the worker to stop the upstream call.
                events.request_cancel(client, job_id)
            if not freed:
                free_slot(slot)

    headers = {**result_headers(job_id), "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    if isinstance(first.event, Chunk) and first.event.served is not None:
        headers["x-llmproxy-provider"] = first.event.served.provider
        headers["x-llmproxy-model"] = first.event.served.model
    return Response(stream_with_context(generate()), mimetype="text/event-stream", headers=headers)
