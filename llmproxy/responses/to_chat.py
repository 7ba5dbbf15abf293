"""A Responses request as the chat completion every provider serves: the one mapping of docs/responses.md.

`instructions` becomes the first system message; input items become messages (consecutive function calls one
assistant message with its tool_calls, a call's output a tool message); function tools, tool_choice,
max_output_tokens, text.format and reasoning.effort take their chat names. The replayed conversation of
`previous_response_id` (HISTORY, set by the web when it accepted the request) comes before the new input.
"""

from __future__ import annotations

from typing import Any

from llmproxy.jsontypes import JSON

# Where an accepted request keeps the conversation it continues: the input and output items of every
# earlier response of its `previous_response_id` chain, oldest first (never shown to callers).
HISTORY = "_history"

# Fields that mean the same in both APIs.
_SAME = ("model", "temperature", "top_p", "parallel_tool_calls", "user", "safety_identifier", "prompt_cache_key")


def input_items(body: JSON) -> list[JSON]:
    """The request's own input as items (a string is one user message)."""
    value = body.get("input")
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}]
    return list(value) if isinstance(value, list) else []


def to_chat(body: JSON) -> JSON:
    """The chat-completion body that asks the same of a model."""
    chat: JSON = {name: body[name] for name in _SAME if body.get(name) is not None}
    messages: list[JSON] = []
    if isinstance(body.get("instructions"), str):
        messages.append({"role": "system", "content": body["instructions"]})
    for item in [*body.get(HISTORY, []), *input_items(body)]:
        _add_item(messages, item)
    chat["messages"] = messages
    if body.get("max_output_tokens") is not None:
        chat["max_tokens"] = body["max_output_tokens"]  # what Mistral, Anthropic and OpenAI-compatible servers honour
    if body.get("tools"):
        chat["tools"] = [_tool(tool) for tool in body["tools"]]
    if body.get("tool_choice") is not None:
        chat["tool_choice"] = _tool_choice(body["tool_choice"])
    fmt = (body.get("text") or {}).get("format")
    if isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema"):
        chat["response_format"] = _response_format(fmt)
    effort = (body.get("reasoning") or {}).get("effort")
    if effort is not None:
        chat["reasoning_effort"] = effort
    if body.get("stream"):
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return chat


def _add_item(messages: list[JSON], item: JSON) -> None:
    kind = item.get("type", "message")
    if kind == "function_call":
        call = {
            "id": item["call_id"],
            "type": "function",
            "function": {"name": item["name"], "arguments": item["arguments"]},
        }
        last = messages[-1] if messages else None
        if last is not None and last["role"] == "assistant":
            last.setdefault("tool_calls", []).append(call)  # one assistant turn: its text and its calls
        else:
            messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
    elif kind == "function_call_output":
        output = item["output"]
        content = output if isinstance(output, str) else _user_content(output)
        messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": content})
    else:
        role, content = item["role"], item["content"]
        if role == "assistant":
            text = content if isinstance(content, str) else "".join(_assistant_text(part) for part in content)
            messages.append({"role": "assistant", "content": text})
        else:
            messages.append({"role": role, "content": content if isinstance(content, str) else _user_content(content)})


def _assistant_text(part: JSON) -> str:
    return str(part.get("text") if part.get("type") == "output_text" else part.get("refusal", ""))


def _user_content(parts: list[Any]) -> list[JSON]:
    converted: list[JSON] = []
    for part in parts:
        if part.get("type") == "input_image":
            image: JSON = {"url": part["image_url"]}
            if part.get("detail") is not None:
                image["detail"] = part["detail"]
            converted.append({"type": "image_url", "image_url": image})
        else:
            converted.append({"type": "text", "text": part["text"]})
    return converted


def _tool(tool: JSON) -> JSON:
    function = {name: tool[name] for name in ("name", "description", "parameters", "strict") if name in tool}
    return {"type": "function", "function": function}


def _tool_choice(choice: Any) -> Any:
    if isinstance(choice, dict):
        return {"type": "function", "function": {"name": choice["name"]}}
    return choice


def _response_format(fmt: JSON) -> JSON:
    if fmt["type"] == "json_object":
        return {"type": "json_object"}
    schema = {name: fmt[name] for name in ("name", "description", "schema", "strict") if name in fmt}
    return {"type": "json_schema", "json_schema": schema}
