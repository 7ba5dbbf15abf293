"""Response objects (`"object": "response"`) as OpenAI shapes them: from a translated chat completion, or the
skeleton of a response still queued, running, failed or cancelled.

Item ids are derived from the response id (`msg_<id>`, `fc_<id>_<n>`), so the items a stream announced and
the stored response name the same items without keeping any state between them.
"""

from __future__ import annotations

import secrets
from typing import Any

from llmproxy.billing.cost import Usage
from llmproxy.jsontypes import JSON

PREFIX = "resp_"
_ECHOED = ("instructions", "max_output_tokens", "previous_response_id", "temperature", "top_p", "user")
# A chat finish reason that stops short: the response is "incomplete", and why.
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def new_response_id() -> str:
    """A fresh response id (also its job's id)."""
    return PREFIX + secrets.token_hex(16)  # 37 characters: job ids are at most 40


def message_id(response_id: str) -> str:
    """The id of the response's message item."""
    return "msg_" + response_id.removeprefix(PREFIX)


def call_item_id(response_id: str, index: int) -> str:
    """The id of the response's `index`-th function call item."""
    return f"fc_{response_id.removeprefix(PREFIX)}_{index}"


def skeleton(response_id: str, body: JSON, *, created_at: int, status: str, model: str | None = None) -> JSON:
    """The response object without output: what the request asked for, and where it stands."""
    response: JSON = {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "background": bool(body.get("background")),
        "error": None,
        "incomplete_details": None,
        "model": model or body.get("model"),
        "output": [],
        "parallel_tool_calls": body.get("parallel_tool_calls") is not False,
        "store": body.get("store") is not False,
        "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice") or "auto",
        "tools": body.get("tools") or [],
        "truncation": "disabled",
        "metadata": body.get("metadata") or {},
        "usage": None,
    }
    for name in _ECHOED:
        response[name] = body.get(name)
    return response


def output_items(response_id: str, message: JSON, *, status: str = "completed") -> list[JSON]:
    """A chat completion's message as output items: the message (if it said anything), then each function call."""
    items: list[JSON] = []
    content: list[JSON] = []
    if message.get("content"):
        content.append({"type": "output_text", "text": message["content"], "annotations": [], "logprobs": []})
    if message.get("refusal"):
        content.append({"type": "refusal", "refusal": message["refusal"]})
    if content:
        item_id = message_id(response_id)
        items.append({"type": "message", "id": item_id, "status": status, "role": "assistant", "content": content})
    for i, call in enumerate(message.get("tool_calls") or []):
        function = call.get("function") or {}
        items.append(
            {
                "type": "function_call",
                "id": call_item_id(response_id, i),
                "call_id": call.get("id") or call_item_id(response_id, i),
                "name": function.get("name", ""),
                "arguments": function.get("arguments") or "",
                "status": status,
            }
        )
    return items


def usage_of(usage: Usage) -> JSON:
    """The Responses API's usage object."""
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_prompt_tokens},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
    }


def from_completion(
    response_id: str, body: JSON, completion: JSON, usage: Usage, *, created_at: int, model: str
) -> JSON:
    """The response a chat completion answers (its first choice), with the gateway's usage."""
    choices = completion.get("choices") or [{}]
    choice: Any = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    reason = _INCOMPLETE.get(str(choice.get("finish_reason")))
    status = "incomplete" if reason else "completed"
    response = skeleton(response_id, body, created_at=created_at, status=status, model=model)
    response["output"] = output_items(response_id, message, status=status)
    response["incomplete_details"] = {"reason": reason} if reason else None
    response["usage"] = usage_of(usage)
    return response
