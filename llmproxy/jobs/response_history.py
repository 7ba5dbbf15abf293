"""`previous_response_id`: the stored conversation a new response continues, replayed before its input.

The earlier response must be this key's, stored (`store` not false) and completed; its own history, its input
and its output items are kept on the new request (to_chat.HISTORY), so a chain of any length is one row read.
As OpenAI does, the earlier `instructions` are not carried over.
"""

from __future__ import annotations

import redis
from sqlalchemy.orm import Session

from llmproxy.errors import ApiError, bad_request
from llmproxy.jobs.lookup import find_own_job
from llmproxy.jobs.response_views import readable
from llmproxy.jobs.states import JobStatus
from llmproxy.jsontypes import JSON
from llmproxy.responses.to_chat import HISTORY, input_items


def with_history(session: Session, client: redis.Redis, api_key_id: str, body: JSON) -> JSON:
    """The request with the conversation of its `previous_response_id` (400 naming it when there is none)."""
    previous_id = body.get("previous_response_id")
    if not previous_id:
        return body
    try:
        previous = find_own_job(session, client, api_key_id, previous_id)
    except ApiError:
        previous = None  # unknown, or another key's: the same answer for both
    if previous is None or not readable(previous):
        raise bad_request(f"Previous response with id '{previous_id}' not found.", param="previous_response_id")
    if previous.status != JobStatus.COMPLETED or not isinstance(previous.result, dict):
        raise bad_request(
            f"Previous response '{previous_id}' has not completed ({previous.status}); continue from a completed one.",
            param="previous_response_id",
        )
    output = [item for item in previous.result.get("output") or [] if item.get("type") in ("message", "function_call")]
    replayed = [_replayable(item) for item in output]
    return {**body, HISTORY: [*previous.request.get(HISTORY, []), *input_items(previous.request), *replayed]}


def _replayable(item: JSON) -> JSON:
    """An output item as an input item (what a caller would send back)."""
    if item["type"] == "function_call":
        return {name: item[name] for name in ("type", "call_id", "name", "arguments")}
    parts = [
        {"type": "output_text", "text": part.get("text", "")} if part.get("type") == "output_text" else part
        for part in item.get("content") or []
    ]
    return {"type": "message", "role": "assistant", "content": parts or ""}
