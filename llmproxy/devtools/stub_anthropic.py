"""The stub upstream's Anthropic dialect: Messages API checks, answers, stream events and errors.

Served under ``/anthropic/v1/messages`` (``StubUpstream.anthropic_url`` is the api_base). The same
scripted behaviours as the OpenAI dialect apply (`Ok`, `Fail`, `Hang`, `Slow`, `BreakStream`); an
`Ok`'s `cache_read_tokens` / `cache_write_tokens` come back as Anthropic's cache usage fields.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from llmproxy.jsontypes import JSON

FIELDS = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "system",
        "stop_sequences",
        "temperature",
        "top_p",
        "top_k",
        "stream",
        "tools",
        "tool_choice",
        "metadata",
        "thinking",
        "service_tier",
    }
)
_ERROR_TYPES = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "The requested resource could not be found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit."),
    500: ("api_error", "An unexpected error has occurred internal to Anthropic's systems."),
    529: ("overloaded_error", "Overloaded"),
}
_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


def error(status: int, message: str | None = None) -> JSON:
    """Anthropic's error body for an HTTP status."""
    etype, default = _ERROR_TYPES.get(status, ("api_error" if status >= 500 else "invalid_request_error", "Error."))
    return {"type": "error", "error": {"type": etype, "message": message or default}}


def fixed_answer(body: JSON, api_key: str) -> tuple[int, JSON] | None:
    """(status, body) a Messages request gets whatever the script says, or None to follow the script.

    A key starting with "bad" or "invalid" gets 401; a model starting with "missing" 404; a body
    Anthropic would refuse (unknown fields, no max_tokens, a system role in messages, a tool_use
    without its tool_result right after) 400.
    """
    if api_key.startswith(("bad", "invalid")):
        return 401, error(401)
    model = str(body.get("model", ""))
    if model.startswith("missing"):
        return 404, error(404, f"model: {model}")
    extra = sorted(set(body) - FIELDS)
    if extra:
        return 400, error(400, f"{extra[0]}: Extra inputs are not permitted")
    if not isinstance(body.get("max_tokens"), int):
        return 400, error(400, "max_tokens: Field required")
    problem = _conversation_problem(body.get("messages"))
    return None if problem is None else (400, error(400, problem))


def _conversation_problem(messages: Any) -> str | None:
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    for position, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            return f"messages.{position}.role: Input should be 'user' or 'assistant'"
        content = message.get("content")
        if content in ("", [], None):
            return f"messages.{position}: all messages must have non-empty content"
        uses = (
            [b["id"] for b in content if isinstance(b, dict) and b.get("type") == "tool_use"]
            if isinstance(content, list)
            else []
        )
        if not uses:
            continue
        following = messages[position + 1]["content"] if position + 1 < len(messages) else []
        answered = {b.get("tool_use_id") for b in following if isinstance(b, dict) and b.get("type") == "tool_result"}
        if set(uses) - answered:
            return f"messages.{position + 1}: `tool_use` ids were found without `tool_result` blocks immediately after"
    return None


def _usage(usage: JSON | None, cache_read: int, cache_write: int) -> JSON:
    return {
        "input_tokens": usage["prompt_tokens"] if usage else 0,
        "cache_creation_input_tokens": cache_write,
        "cache_read_input_tokens": cache_read,
        "output_tokens": usage["completion_tokens"] if usage else 0,
    }


def _tool_uses(tool_calls: list[JSON] | None) -> list[JSON]:
    return [
        {
            "type": "tool_use",
            "id": f"toolu_stub{i}",
            "name": c["function"]["name"],
            "input": json.loads(c["function"]["arguments"] or "{}"),
        }
        for i, c in enumerate(tool_calls or [])
    ]


def message_body(
    model: str,
    content: str,
    finish: str,
    usage: JSON | None,
    tool_calls: list[JSON] | None,
    cache: tuple[int, int] = (0, 0),
) -> JSON:
    """A Messages API answer; `cache` is (reads, writes); no usage object when `usage` is None."""
    blocks: list[JSON] = [{"type": "text", "text": content}] if content else []
    blocks += _tool_uses(tool_calls)
    out: JSON = {
        "id": "msg_" + uuid.uuid4().hex[:24],
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": blocks,
        "stop_reason": _STOP_REASONS.get(finish, finish),
        "stop_sequence": None,
    }
    if usage is not None:
        out["usage"] = _usage(usage, *cache)
    return out


def stream_payloads(
    model: str,
    content: str,
    finish: str,
    usage: JSON | None,
    tool_calls: list[JSON] | None,
    cache: tuple[int, int] = (0, 0),
) -> list[bytes]:
    """The SSE events of an answer as Anthropic sends them, one `event:`/`data:` pair each."""
    start = message_body(model, "", finish, usage, None, cache)
    start.update(content=[], stop_reason=None)
    if usage is not None:
        start["usage"]["output_tokens"] = 1  # Anthropic's message_start has a placeholder output count
    events: list[JSON] = [{"type": "message_start", "message": start}, {"type": "ping"}]
    index = 0
    if content:
        events.append({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
        for piece in re.findall(r"\S+\s*", content):
            events.append({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}})
        events.append({"type": "content_block_stop", "index": 0})
        index = 1
    for use in _tool_uses(tool_calls):
        arguments = json.dumps(use.pop("input"))
        use["input"] = {}
        events.append({"type": "content_block_start", "index": index, "content_block": use})
        for piece in re.findall(r"\S+\s*", arguments):
            delta = {"type": "input_json_delta", "partial_json": piece}
            events.append({"type": "content_block_delta", "index": index, "delta": delta})
        events.append({"type": "content_block_stop", "index": index})
        index += 1
    end: JSON = {"type": "message_delta", "delta": {"stop_reason": _STOP_REASONS.get(finish, finish)}}
    if usage is not None:
        end["usage"] = {"output_tokens": usage["completion_tokens"]}
    events += [end, {"type": "message_stop"}]
    return [f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events]
