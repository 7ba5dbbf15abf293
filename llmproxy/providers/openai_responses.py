"""OpenAI's own Responses API answers read as the chat completion (and chunks) the gateway works with.

A Responses request to a provider that has the API (kind `openai`) is sent to it as it is; what comes back
is read here as a chat completion, so retries, fallbacks (to providers without the API too), billing and the
response the caller gets are one code path. Items the gateway does not serve cannot come back: their
requests are refused before they are sent.
"""

from __future__ import annotations

from typing import Any

from llmproxy.jsontypes import JSON

_FINISH = {"max_output_tokens": "length", "content_filter": "content_filter"}


def _usage(usage: Any) -> JSON | None:
    if not isinstance(usage, dict):
        return None
    details = usage.get("input_tokens_details") or {}
    return {
        "prompt_tokens": usage.get("input_tokens") or 0,
        "completion_tokens": usage.get("output_tokens") or 0,
        "total_tokens": usage.get("total_tokens") or 0,
        "prompt_tokens_details": {"cached_tokens": details.get("cached_tokens") or 0},
    }


def _finish(response: JSON, has_calls: bool) -> str:
    reason = (response.get("incomplete_details") or {}).get("reason")
    if response.get("status") == "incomplete":
        return _FINISH.get(str(reason), "length")
    return "tool_calls" if has_calls else "stop"


def completion_of(response: JSON, model: str) -> JSON:
    """A Responses API response as a chat completion (its text, refusal, function calls, finish and usage)."""
    text: list[str] = []
    refusal: list[str] = []
    calls: list[JSON] = []
    for item in response.get("output") or []:
        if not isinstance(item, dict):
            continue
        if item.get("type") == "message":
            for part in item.get("content") or []:
                if part.get("type") == "output_text":
                    text.append(str(part.get("text", "")))
                elif part.get("type") == "refusal":
                    refusal.append(str(part.get("refusal", "")))
        elif item.get("type") == "function_call":
            function = {"name": item.get("name", ""), "arguments": item.get("arguments", "")}
            calls.append({"id": item.get("call_id"), "type": "function", "function": function})
    message: JSON = {"role": "assistant", "content": "".join(text) if text or not calls else None}
    if refusal:
        message["refusal"] = "".join(refusal)
    if calls:
        message["tool_calls"] = calls
    return {
        "id": response.get("id"),
        "object": "chat.completion",
        "created": response.get("created_at"),
        "model": response.get("model") or model,
        "choices": [{"index": 0, "message": message, "finish_reason": _finish(response, bool(calls))}],
        "usage": _usage(response.get("usage")),
    }


class ChunkReader:
    """A Responses API event stream read as chat chunks; `ended` once response.completed/incomplete came."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.ended = False
        self._calls: dict[str, int] = {}  # function call item id -> its tool_calls index

    def _chunk(self, delta: JSON, finish: str | None = None, usage: JSON | None = None) -> JSON:
        chunk: JSON = {
            "object": "chat.completion.chunk",
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        if usage is not None:
            chunk["usage"] = usage
        return chunk

    def read(self, event: JSON) -> list[JSON]:
        """The chunks one event makes (most events make none)."""
        kind = event.get("type")
        if kind == "response.output_text.delta":
            return [self._chunk({"content": event.get("delta", "")})]
        if kind == "response.refusal.delta":
            return [self._chunk({"refusal": event.get("delta", "")})]
        item = event.get("item") or {}
        if kind == "response.output_item.added" and item.get("type") == "function_call":
            index = self._calls.setdefault(str(item.get("id")), len(self._calls))
            head = {"index": index, "id": item.get("call_id"), "type": "function"}
            return [self._chunk({"tool_calls": [{**head, "function": {"name": item.get("name", "")}}]})]
        if kind == "response.function_call_arguments.delta" and event.get("item_id") in self._calls:
            call = {"index": self._calls[event["item_id"]], "function": {"arguments": event.get("delta", "")}}
            return [self._chunk({"tool_calls": [call]})]
        if kind in ("response.completed", "response.incomplete"):
            self.ended = True
            response = event.get("response") or {}
            return [self._chunk({}, _finish(response, bool(self._calls)), _usage(response.get("usage")))]
        return []
