"""Anthropic's answers as OpenAI's: a message as a `chat.completion`, stream events as `chat.completion.chunk`s.

The answer half of the "anthropic" adapter (:mod:`llmproxy.providers.anthropic` has the protocol and the
mapping summary; docs/providers.md the whole table).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from llmproxy.jsontypes import JSON

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def usage_from_anthropic(usage: Any) -> JSON | None:
    """Anthropic's usage as OpenAI's, cache reads and writes inside prompt_tokens (see the module)."""
    if not isinstance(usage, dict):
        return None
    fresh, reads, writes, output = (
        int(usage.get(name) or 0)
        for name in ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens", "output_tokens")
    )
    prompt = fresh + reads + writes
    out: JSON = {"prompt_tokens": prompt, "completion_tokens": output, "total_tokens": prompt + output}
    if reads or writes:
        out["prompt_tokens_details"] = {"cached_tokens": reads, "cache_write_tokens": writes}
    return out


def completion_from_message(data: JSON, upstream_model: str) -> JSON:
    """A Messages API answer as OpenAI's `chat.completion`."""
    texts: list[str] = []
    calls: list[JSON] = []
    for block in data["content"]:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif block.get("type") == "tool_use":
            calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {"name": block.get("name"), "arguments": json.dumps(block.get("input") or {})},
                }
            )
    message: JSON = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        message["tool_calls"] = calls
    return {
        "id": str(data.get("id") or _new_id()),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": data.get("model") or upstream_model,
        "choices": [{"index": 0, "message": message, "finish_reason": _finish(data.get("stop_reason"))}],
        "usage": usage_from_anthropic(data.get("usage")),
    }


def _finish(reason: Any) -> str:
    return FINISH_REASONS.get(str(reason), "stop") if reason is not None else "stop"


def _obj(value: Any) -> JSON:
    return value if isinstance(value, dict) else {}


def _new_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex[:24]


class StreamTranslator:
    """Turns Anthropic stream events, in order, into OpenAI chunks; `finished` after message_stop."""

    def __init__(self, upstream_model: str) -> None:
        self.base: JSON = {
            "id": _new_id(),
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": upstream_model,
        }
        self.usage: dict[str, Any] = {}
        self.stop_reason: Any = None
        self.started = False
        self.finished = False
        self.tool_index: dict[int, int] = {}  # content block index -> OpenAI tool call index

    def _chunk(self, delta: JSON, finish: str | None = None) -> JSON:
        return {**self.base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    def _open(self) -> list[JSON]:
        # The role chunk is held back until there is content: nothing is yielded for message_start
        # alone, so an error event before any content still counts as a failure before the first chunk.
        if self.started:
            return []
        self.started = True
        return [self._chunk({"role": "assistant", "content": ""})]

    def chunks(self, event: JSON) -> list[JSON]:
        """The OpenAI chunks for one Anthropic event (none for ping, block stops and unknown events)."""
        kind = event.get("type")
        if kind == "message_start":
            message = _obj(event.get("message"))
            if message.get("id"):
                self.base["id"] = str(message["id"])
            if message.get("model"):
                self.base["model"] = message["model"]
            self.usage.update(message.get("usage") or {})
            return []
        if kind == "content_block_start":
            return self._block_start(event)
        if kind == "content_block_delta":
            return self._block_delta(event)
        if kind == "message_delta":
            delta = _obj(event.get("delta"))
            self.stop_reason = delta.get("stop_reason") or self.stop_reason
            # Its usage counts are cumulative: output_tokens (and any input counts it repeats) replace ours.
            self.usage.update({k: v for k, v in (event.get("usage") or {}).items() if v is not None})
            return []
        if kind == "message_stop":
            self.finished = True
            out = self._open()
            out.append(self._chunk({}, _finish(self.stop_reason)))
            out.append({**self.base, "choices": [], "usage": usage_from_anthropic(self.usage)})
            return out
        return []

    def _block_start(self, event: JSON) -> list[JSON]:
        block = _obj(event.get("content_block"))
        out = self._open()
        if block.get("type") == "tool_use":
            index = self.tool_index[int(event.get("index") or 0)] = len(self.tool_index)
            head = {
                "index": index,
                "id": block.get("id"),
                "type": "function",
                "function": {"name": block.get("name"), "arguments": ""},
            }
            out.append(self._chunk({"tool_calls": [head]}))
        elif block.get("type") == "text" and block.get("text"):
            out.append(self._chunk({"content": block["text"]}))
        return out

    def _block_delta(self, event: JSON) -> list[JSON]:
        delta = _obj(event.get("delta"))
        out = self._open()
        if delta.get("type") == "text_delta" and delta.get("text"):
            out.append(self._chunk({"content": delta["text"]}))
        elif delta.get("type") == "input_json_delta" and delta.get("partial_json"):
            index = self.tool_index.get(int(event.get("index") or 0), 0)
            piece = {"index": index, "function": {"arguments": delta["partial_json"]}}
            out.append(self._chunk({"tool_calls": [piece]}))
        return out
