"""The chat.completion a stream amounts to, assembled from its chunks (for the job record and billing)."""

from __future__ import annotations

from llmproxy import json_schema as js
from llmproxy.jsontypes import JSON

# OpenAI's chat.completion as far as the gateway vouches for it: the provider fills the rest.
CHAT_COMPLETION_SCHEMA = js.obj(
    {
        "id": js.string(),
        "object": js.const("chat.completion"),
        "created": js.integer(),
        "model": js.string(),
        "choices": js.array(js.obj({"index": js.integer(0), "message": js.obj(), "finish_reason": js.ANY})),
        "usage": js.nullable(js.obj()),
    },
    required=["id", "object", "choices"],
)

# Text a delta may carry besides `content`: a refusal, and reasoning as some providers stream it.
_TEXT_FIELDS = ("refusal", "reasoning_content", "reasoning")


class StreamAssembler:
    """Builds the chat.completion a stream amounts to, for the job record and billing."""

    def __init__(self) -> None:
        self.first: JSON | None = None
        self.choices: dict[int, JSON] = {}
        self.usage: JSON | None = None

    def add(self, chunk: JSON) -> None:
        """Fold one chunk in."""
        if self.first is None:
            self.first = chunk
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            slot = self.choices.setdefault(
                choice.get("index", 0),
                {
                    "index": choice.get("index", 0),
                    "message": {"role": "assistant", "content": ""},
                    "finish_reason": None,
                },
            )
            delta = choice.get("delta") or {}
            message = slot["message"]
            if delta.get("content"):
                message["content"] += delta["content"]
            for name in _TEXT_FIELDS:  # kept only when streamed: billing counts them (see chat.tokens)
                if isinstance(delta.get(name), str) and delta[name]:
                    message[name] = (message.get(name) or "") + delta[name]
            for part in delta.get("tool_calls") or []:
                self._merge_tool_call(message.setdefault("tool_calls", []), part)
            if isinstance(delta.get("function_call"), dict):  # the legacy form: one call, no index
                self._merge_function(message.setdefault("function_call", {"name": "", "arguments": ""}), delta)
            if choice.get("finish_reason"):
                slot["finish_reason"] = choice["finish_reason"]

    @staticmethod
    def _merge_tool_call(calls: list[JSON], part: JSON) -> None:
        # Tool calls arrive as fragments keyed by index: id and name once, arguments in pieces.
        index = part.get("index", len(calls))
        while len(calls) <= index:
            calls.append({"id": None, "type": "function", "function": {"name": "", "arguments": ""}})
        call = calls[index]
        call["id"] = part.get("id") or call["id"]
        call["type"] = part.get("type") or call["type"]
        StreamAssembler._merge_function(call["function"], part)

    @staticmethod
    def _merge_function(function: JSON, part: JSON) -> None:
        fragment = part.get("function") or part.get("function_call") or {}
        function["name"] += fragment.get("name") or ""
        function["arguments"] += fragment.get("arguments") or ""

    def completion(self) -> JSON:
        """The assembled chat.completion."""
        first = self.first or {}
        for choice in self.choices.values():
            message = choice["message"]
            if (message.get("tool_calls") or message.get("function_call")) and not message["content"]:
                message["content"] = None
        return {
            "id": first.get("id"),
            "object": "chat.completion",
            "created": first.get("created"),
            "model": first.get("model"),
            "choices": [self.choices[i] for i in sorted(self.choices)],
            "usage": self.usage,
        }
