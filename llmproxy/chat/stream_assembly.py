"""The chat.completion a stream amounts to, assembled from its chunks (for the job record and billing)."""

from __future__ import annotations

from llmproxy.jsontypes import JSON


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
            if delta.get("content"):
                slot["message"]["content"] += delta["content"]
            for part in delta.get("tool_calls") or []:
                self._merge_tool_call(slot["message"].setdefault("tool_calls", []), part)
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
        function = part.get("function") or {}
        call["function"]["name"] += function.get("name") or ""
        call["function"]["arguments"] += function.get("arguments") or ""

    def completion(self) -> JSON:
        """The assembled chat.completion."""
        first = self.first or {}
        for choice in self.choices.values():
            if choice["message"].get("tool_calls") and not choice["message"]["content"]:
                choice["message"]["content"] = None
        return {
            "id": first.get("id"),
            "object": "chat.completion",
            "created": first.get("created"),
            "model": first.get("model"),
            "choices": [self.choices[i] for i in sorted(self.choices)],
            "usage": self.usage,
        }
