"""The stub's `POST /v1/responses`: OpenAI's Responses API, answered and streamed as OpenAI does (typed events).

Written apart from the gateway's own translation (llmproxy.responses), so the tests compare two readings of
OpenAI's shapes rather than one with itself. The answer to echo is the last user text of the input.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

from llmproxy.devtools.stub_responses import Behaviour, Ok
from llmproxy.jsontypes import JSON


def last_user_text(body: JSON) -> str:
    """The text of the input's last user message (the whole input when it is a string)."""
    value = body.get("input")
    if isinstance(value, str):
        return value
    for item in reversed(value if isinstance(value, list) else []):
        if isinstance(item, dict) and item.get("role") == "user":
            content = item.get("content")
            if isinstance(content, str):
                return content
            return " ".join(p.get("text", "") for p in content or [] if isinstance(p, dict))
    return ""


def answer(body: JSON, behaviour: Behaviour) -> tuple[JSON, list[bytes]]:
    """(the response object, its stream's SSE payloads) for a successful answer to `body`."""
    ok = behaviour if isinstance(behaviour, Ok) else Ok(content=getattr(behaviour, "content", None))
    rid, model = "resp_up_" + uuid.uuid4().hex, str(body.get("model", ""))
    output: list[JSON] = []
    calls = ok.tool_calls or []
    text = "" if calls else (ok.content if ok.content is not None else "echo: " + last_user_text(body))
    if text:
        part = {"type": "output_text", "text": text, "annotations": []}
        output.append(
            {"type": "message", "id": "msg_up_1", "status": "completed", "role": "assistant", "content": [part]}
        )
    for i, call in enumerate(calls):
        output.append(
            {
                "type": "function_call",
                "id": f"fc_up_{i}",
                "call_id": f"call_up_{i}",
                "name": call["name"],
                "arguments": call["arguments"],
                "status": "completed",
            }
        )
    prompt = ok.prompt_tokens if ok.prompt_tokens is not None else len(last_user_text(body).split()) + 4
    produced = len(text.split()) + sum(len(c["arguments"].split()) for c in calls)
    completion = ok.completion_tokens if ok.completion_tokens is not None else produced
    usage = {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + completion,
    }
    response = {
        "id": rid,
        "object": "response",
        "created_at": int(time.time()),
        "status": "completed",
        "model": model,
        "output": output,
        "usage": usage,
        "error": None,
        "incomplete_details": None,
        "parallel_tool_calls": True,
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools", []),
    }
    return response, _events(response)


def _events(response: JSON) -> list[bytes]:
    started = {**response, "status": "in_progress", "output": [], "usage": None}
    events: list[JSON] = [
        {"type": "response.created", "response": started},
        {"type": "response.in_progress", "response": started},
    ]
    for index, item in enumerate(response["output"]):
        if item["type"] == "message":
            text = item["content"][0]["text"]
            events.append(
                {
                    "type": "response.output_item.added",
                    "output_index": index,
                    "item": {**item, "status": "in_progress", "content": []},
                }
            )
            for piece in re.findall(r"\S+\s*", text):
                events.append(
                    {
                        "type": "response.output_text.delta",
                        "item_id": item["id"],
                        "output_index": index,
                        "content_index": 0,
                        "delta": piece,
                    }
                )
            events.append(
                {
                    "type": "response.output_text.done",
                    "item_id": item["id"],
                    "output_index": index,
                    "content_index": 0,
                    "text": text,
                }
            )
        else:
            events.append(
                {
                    "type": "response.output_item.added",
                    "output_index": index,
                    "item": {**item, "status": "in_progress", "arguments": ""},
                }
            )
            for piece in re.findall(r"\S+\s*", item["arguments"]):
                events.append(
                    {
                        "type": "response.function_call_arguments.delta",
                        "item_id": item["id"],
                        "output_index": index,
                        "delta": piece,
                    }
                )
        events.append({"type": "response.output_item.done", "output_index": index, "item": item})
    events.append({"type": "response.completed", "response": response})
    return [_sse(event, n) for n, event in enumerate(events)]


def _sse(event: dict[str, Any], sequence: int) -> bytes:
    event = {**event, "sequence_number": sequence}
    return f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode()
