"""The stub upstream's answer bodies: a chat.completion, or the stream events of one, in OpenAI's or Mistral's dialect.

Split from stub_responses.py (behaviours and what they answer) so each reads in one sitting.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

from llmproxy.jsontypes import JSON


def tool_calls_of(behaviour: object) -> list[JSON] | None:
    """The tool calls a behaviour answers with, as OpenAI's message has them (ids numbered), or None."""
    calls = getattr(behaviour, "tool_calls", None)
    if not calls:
        return None
    return [
        {"id": f"call_{i}", "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
        for i, c in enumerate(calls)
    ]


def completion_body(
    model: str, content: str, finish: str, usage: JSON | None, dialect: str, tool_calls: list[JSON] | None = None
) -> JSON:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message.update(content=None, tool_calls=tool_calls)
    choice: dict[str, Any] = {"index": 0, "message": message, "finish_reason": finish}
    out: dict[str, Any] = {
        "id": "chatcmpl-" + uuid.uuid4().hex[:24],
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
    }
    if dialect == "mistral":
        message.setdefault("tool_calls", None)
        message["prefix"] = False
    else:
        message["refusal"] = None
        choice["logprobs"] = None
        out["system_fingerprint"] = "fp_stub"
    if usage is not None:
        out["usage"] = usage
    return out


def stream_chunks(
    body: JSON,
    model: str,
    content: str,
    finish: str,
    usage: JSON | None,
    dialect: str,
    tool_calls: list[JSON] | None = None,
) -> list[JSON]:
    """The stream events for an answer, as the dialect's server sends them (tool calls' arguments in pieces)."""
    base: dict[str, Any] = {
        "id": "chatcmpl-" + uuid.uuid4().hex[:24],
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
    }
    options = body.get("stream_options") or {}
    include_usage = dialect == "openai" and usage is not None and options.get("include_usage")
    if dialect == "openai":
        base["system_fingerprint"] = "fp_stub"
    if include_usage:
        base["usage"] = None  # OpenAI marks every chunk but the last this way

    def chunk(delta: JSON, reason: str | None = None) -> JSON:
        choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": reason}
        if dialect == "openai":
            choice["logprobs"] = None
        return {**base, "choices": [choice]}

    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": piece}) for piece in re.findall(r"\S+\s*", content)]
    for i, call in enumerate(tool_calls or []):
        head = {"index": i, "id": call["id"], "type": "function", "function": {"name": call["function"]["name"]}}
        events.append(chunk({"tool_calls": [head]}))
        for piece in re.findall(r"\S+\s*", call["function"]["arguments"]):
            events.append(chunk({"tool_calls": [{"index": i, "function": {"arguments": piece}}]}))
    events.append(chunk({}, finish))
    if dialect == "mistral" and usage is not None:
        events[-1]["usage"] = usage  # Mistral: usage rides on the finish chunk, always
    if include_usage:
        events.append({**base, "choices": [], "usage": usage})
    return events


def model_list(models: list[str]) -> JSON:
    """GET /v1/models: these model ids, as OpenAI lists them."""
    return {
        "object": "list",
        "data": [{"id": m, "object": "model", "created": 1700000000, "owned_by": "stub"} for m in models],
    }
