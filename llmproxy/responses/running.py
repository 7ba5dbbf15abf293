"""How a worker runs a Responses job: the chat request it sends, the response it stores, its stream's events."""

from __future__ import annotations

import time
from typing import Protocol

from llmproxy.billing.cost import Usage
from llmproxy.jsontypes import JSON
from llmproxy.responses.objects import from_completion
from llmproxy.responses.stream_events import EventTranslator
from llmproxy.responses.to_chat import to_chat

RESPONSES = "responses"  # the operation (llmproxy.operations.Operation.RESPONSES)


class RunningJob(Protocol):
    """What of a job these read (a storage Job, stored or detached)."""

    id: str
    operation: str
    request: JSON

    @property
    def created_at(self) -> object: ...


def is_response(job: RunningJob) -> bool:
    """The job answers a Responses API request."""
    return job.operation == RESPONSES


def chat_request(job: RunningJob) -> JSON:
    """What the job asks of a chat model: a Responses request translated, any other as it is."""
    return to_chat(job.request) if is_response(job) else job.request


def created_at(job: RunningJob) -> int:
    """The job's creation in Unix seconds (now when it has none)."""
    stamp = getattr(job.created_at, "timestamp", None)
    return int(stamp()) if callable(stamp) and stamp() > 0 else int(time.time())


def stored_response(job: RunningJob, completion: JSON, usage: Usage, model: str) -> JSON:
    """The response object a Responses job stores for the chat completion that served it."""
    return from_completion(job.id, job.request, completion, usage, created_at=created_at(job), model=model)


def event_translator(job: RunningJob, model: str) -> EventTranslator:
    """The translator of a Responses job's stream, once its serving model is known."""
    return EventTranslator.for_request(job.id, job.request, created_at=created_at(job), model=model)
