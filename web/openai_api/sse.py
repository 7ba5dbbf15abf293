"""A streamed answer: the worker's chunks relayed as Server-Sent Events in its API's format (chat completion chunks
ending with [DONE], or a response's typed events), ending with an error when the stream cannot finish."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from typing import Any, Protocol

from flask import Response, stream_with_context

from llmproxy.errors import error_body
from llmproxy.jobs import events
from llmproxy.jobs.events import Chunk, Done, Received
from llmproxy.jobs.states import JobStatus
from llmproxy.limits.parallel import Slot
from llmproxy.responses.stream_events import failed_event
from web.context import resources
from web.openai_api.answers import result_headers
from web.slots import free_slot, renew


def sse(payload: dict[str, Any] | str) -> str:
    """One SSE `data:` line."""
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {data}\n\n"


class StreamFormat(Protocol):
    """How one API writes its stream: each chunk, the end, and an error that ends it early."""

    def chunk(self, data: dict[str, Any]) -> str | None:
        """The chunk's SSE text (None: not for this caller)."""

    def done(self) -> str | None:
        """What ends a completed stream."""

    def error(self, error: dict[str, Any]) -> str:
        """What ends a stream that failed (`error`: the OpenAI error object)."""


class ChatChunks:
    """Chat completion chunks, `data: [DONE]` last; usage only with stream_options.include_usage."""

    def __init__(self, include_usage: bool) -> None:
        self.include_usage = include_usage

    def chunk(self, data: dict[str, Any]) -> str | None:
        """The chunk as the caller asked for it."""
        if not self.include_usage:
            if not data.get("choices") and data.get("usage"):
                return None
            data.pop("usage", None)
        return sse(data)

    def done(self) -> str | None:
        """OpenAI's end marker."""
        return sse("[DONE]")

    def error(self, error: dict[str, Any]) -> str:
        """An error object as the last data line."""
        return sse({"error": error})


class ResponseEvents:
    """The Responses API's typed events (`event:` named); a failure ends with `response.failed`, numbered on."""

    def __init__(self, response: dict[str, Any]) -> None:
        self.response = response  # the response's skeleton: what a failure event reports
        self.sequence = 0

    def chunk(self, data: dict[str, Any]) -> str | None:
        """One event, named by its type."""
        self.sequence = int(data.get("sequence_number", self.sequence)) + 1
        return f"event: {data.get('type')}\n" + sse(data)

    def done(self) -> str | None:
        """Nothing: `response.completed` was the last event."""
        return None

    def error(self, error: dict[str, Any]) -> str:
        """`response.failed` with the error."""
        return self.chunk(failed_event(self.response, error, self.sequence)) or ""


def sse_response(
    job_id: str, first: Received, rest: Iterator[Received | None], *, fmt: StreamFormat, slot: Slot | None = None
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
                    yield fmt.error(error_body(message, type="timeout", code="sync_timeout")["error"])
                    return
                if received.run != first.run:
                    finished = True
                    message = "The worker serving this stream was lost"
                    yield fmt.error(error_body(message, type="upstream_error", code="stream_interrupted")["error"])
                    return
                event = received.event
                if isinstance(event, Chunk):
                    line = fmt.chunk(event.data)
                    if line:
                        yield line
                else:
                    finished = freed = True
                    end = fmt.done() if isinstance(event, Done) and event.status == JobStatus.COMPLETED else None
                    if end is not None:
                        yield end
                    elif not (isinstance(event, Done) and event.status == JobStatus.COMPLETED):
                        yield fmt.error(event.error or {})
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
