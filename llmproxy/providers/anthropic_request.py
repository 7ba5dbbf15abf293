"""OpenAI chat request -> Anthropic Messages request: the request half of the "anthropic" adapter.

Split from :mod:`llmproxy.providers.anthropic` (protocol, answers, stream events) so each reads in
one sitting; docs/providers.md has the whole mapping as a table.
"""

from __future__ import annotations

import json
import re
from typing import Any

from llmproxy.jsontypes import JSON
from llmproxy.providers.errors import ProviderBadRequest

# Only reached when a provider is called outside the gateway: the gateway always sets an output cap
# (llmproxy.chat.output_cap), and Anthropic refuses a request without one.
FALLBACK_MAX_TOKENS = 4096
_DATA_URL = re.compile(r"data:(?P<media>[\w.+-]+/[\w.+-]+);base64,(?P<data>.*)", re.DOTALL)


def messages_request(body: JSON, upstream_model: str, *, stream: bool) -> JSON:
    """The Messages API body for an OpenAI chat body (fields Anthropic lacks are dropped; see docs/providers.md)."""
    n = body.get("n")
    if isinstance(n, int) and n > 1:
        # Anthropic answers one message per request; one choice for n=2 would be a silent lie.
        raise _bad("Anthropic models answer one choice per request: n must be 1", "n")
    system, turns = _conversation(body.get("messages") or [])
    payload: JSON = {"model": upstream_model, "messages": turns, "max_tokens": _max_tokens(body)}
    if system:
        payload["system"] = system
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            payload[name] = body[name]
    stop = body.get("stop")
    if isinstance(stop, str):
        payload["stop_sequences"] = [stop]
    elif isinstance(stop, list) and stop:
        payload["stop_sequences"] = [s for s in stop if isinstance(s, str)]
    tools = [_tool(t) for t in body.get("tools") or [] if isinstance(t, dict) and t.get("type") == "function"]
    choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
    if tools:
        payload["tools"] = tools
        if choice is not None:
            payload["tool_choice"] = choice
    if isinstance(body.get("user"), str):
        payload["metadata"] = {"user_id": body["user"]}
    if stream:
        payload["stream"] = True
    return payload


def _max_tokens(body: JSON) -> int:
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return FALLBACK_MAX_TOKENS


def _bad(message: str, param: str) -> ProviderBadRequest:
    # Raised before any call: an OpenAI-shaped 400 the caller sees as it would from the upstream.
    body = {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": None}}
    return ProviderBadRequest(f"anthropic: {message}", status_code=400, upstream_body=body, provider="anthropic")


def _conversation(messages: list[Any]) -> tuple[str, list[JSON]]:
    """(system text, alternating turns): system/developer messages lifted out, same-role turns merged."""
    system: list[str] = []
    turns: list[JSON] = []
    for position, message in enumerate(messages):
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        if role in ("system", "developer"):
            # Anthropic has one top-level system prompt; every instruction message joins it, in order.
            text = _plain_text(message.get("content"))
            if text:
                system.append(text)
            continue
        if role == "user":
            blocks = _user_blocks(message.get("content"), f"messages[{position}]")
        elif role == "assistant":
            blocks = _assistant_blocks(message, f"messages[{position}]")
        elif role in ("tool", "function"):
            blocks = [_tool_result(message)]
            role = "user"  # Anthropic carries tool results in the user turn that follows the call
        else:
            continue
        if not blocks:
            continue  # Anthropic refuses empty content; an empty OpenAI message says nothing anyway
        if turns and turns[-1]["role"] == role:
            # Consecutive tool results (and a user message after them) make one user turn: Anthropic
            # wants every tool_result of an assistant turn in the single user turn after it.
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return "\n\n".join(system), turns


def _plain_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _text_block(text: str, part: JSON | None = None) -> JSON:
    block: JSON = {"type": "text", "text": text}
    if part is not None and isinstance(part.get("cache_control"), dict):
        # Prompt caching is opt-in per block at Anthropic; a caller who marks a part keeps the mark.
        block["cache_control"] = part["cache_control"]
    return block


def _user_blocks(content: Any, where: str) -> list[JSON]:
    if isinstance(content, str):
        return [_text_block(content)] if content else []
    blocks: list[JSON] = []
    for index, part in enumerate(content if isinstance(content, list) else []):
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "text" and part.get("text"):
            blocks.append(_text_block(str(part["text"]), part))
        elif kind == "image_url":
            blocks.append(_image_block(part, f"{where}.content[{index}]"))
        elif kind != "text":
            raise _bad(f"Anthropic models do not take '{kind}' content parts", f"{where}.content[{index}]")
    return blocks


def _image_block(part: JSON, where: str) -> JSON:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    url = url if isinstance(url, str) else ""
    match = _DATA_URL.match(url)
    if match:
        source: JSON = {"type": "base64", "media_type": match["media"], "data": match["data"]}
    elif url.startswith(("http://", "https://")):
        source = {"type": "url", "url": url}
    else:
        raise _bad("An image must be an http(s) URL or a base64 data URL", f"{where}.image_url.url")
    return {"type": "image", "source": source}


def _assistant_blocks(message: JSON, where: str) -> list[JSON]:
    blocks: list[JSON] = []
    content = message.get("content")
    if isinstance(content, str):
        if content:
            blocks.append(_text_block(content))
    elif isinstance(content, list):
        # Refusal parts are what the assistant said too; Anthropic knows them only as text.
        for part in content:
            if isinstance(part, dict) and part.get("type") in ("text", "refusal"):
                text = part.get("text") or part.get("refusal")
                if isinstance(text, str) and text:
                    blocks.append(_text_block(text, part))
    calls = list(message.get("tool_calls") or [])
    legacy = message.get("function_call")
    if isinstance(legacy, dict):
        calls.append({"id": f"call_{legacy.get('name')}", "function": legacy})
    for index, call in enumerate(calls):
        if not isinstance(call, dict) or not isinstance(call.get("function"), dict):
            continue
        function = call["function"]
        blocks.append(
            {
                "type": "tool_use",
                "id": str(call.get("id") or f"call_{index}"),
                "name": str(function.get("name") or ""),
                "input": _arguments(function.get("arguments"), f"{where}.tool_calls[{index}].function.arguments"),
            }
        )
    return blocks


def _arguments(arguments: Any, where: str) -> JSON:
    """A tool call's JSON-string arguments as the object Anthropic's tool_use `input` must be."""
    if isinstance(arguments, dict):
        return arguments
    if arguments in (None, ""):
        return {}
    try:
        parsed = json.loads(arguments)
    except (TypeError, ValueError):
        raise _bad("Tool call arguments must be a JSON object", where) from None
    if not isinstance(parsed, dict):
        raise _bad("Tool call arguments must be a JSON object", where)
    return parsed


def _tool_result(message: JSON) -> JSON:
    content = message.get("content")
    # The legacy "function" role has no call id; its name is what the assistant's call was given above.
    tool_id = message.get("tool_call_id") or f"call_{message.get('name')}"
    block: JSON = {"type": "tool_result", "tool_use_id": str(tool_id)}
    if isinstance(content, list):
        block["content"] = [_text_block(str(p["text"]), p) for p in content if isinstance(p, dict) and p.get("text")]
    elif content:
        block["content"] = str(content)
    return block


def _tool(tool: JSON) -> JSON:
    function: JSON = tool["function"] if isinstance(tool.get("function"), dict) else {}
    out: JSON = {
        "name": function.get("name"),
        # Anthropic requires a schema; a function without parameters takes an empty object.
        "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
    }
    if function.get("description"):
        out["description"] = function["description"]
    if isinstance(tool.get("cache_control"), dict):
        out["cache_control"] = tool["cache_control"]
    return out


def _tool_choice(choice: Any, parallel: Any) -> JSON | None:
    """OpenAI's tool_choice (and parallel_tool_calls=false) as Anthropic's tool_choice; None: leave it out."""
    mapped: JSON | None
    if choice == "none":
        return {"type": "none"}
    if choice == "required":
        mapped = {"type": "any"}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        mapped = {"type": "tool", "name": choice["function"].get("name")}
    elif choice == "auto" or parallel is False:
        mapped = {"type": "auto"}
    else:
        return None
    if parallel is False:
        mapped["disable_parallel_tool_use"] = True
    return mapped
