"""A streamed chat completion as the Responses API's typed events, numbered by `sequence_number`.

The worker feeds each chat chunk to `add` as it arrives and relays the events it returns; once the chain has
ended and the response is billed, `close` announces every item done and then `response.completed` (or
`response.incomplete`) with the stored response. A stream that breaks is ended by the web with
`response.failed` (`failed_event`), numbered after the last event it relayed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from llmproxy.jsontypes import JSON
from llmproxy.responses.objects import call_item_id, message_id, skeleton


@dataclass
class _Call:
    output_index: int
    call_id: str
    name: str
    arguments: str = ""


@dataclass
class EventTranslator:
    """The events of one streamed response, in order; `response` is its skeleton (id, model, what was asked)."""

    response: JSON
    sequence: int = 0
    _opened: dict[str, int] = field(default_factory=dict)  # item id -> output index, once announced
    _calls: dict[int, _Call] = field(default_factory=dict)  # chat tool call index -> its item

    @classmethod
    def for_request(cls, response_id: str, body: JSON, *, created_at: int, model: str) -> EventTranslator:
        """A translator for the response `response_id` answering `body`."""
        return cls(skeleton(response_id, body, created_at=created_at, status="in_progress", model=model))

    def _event(self, kind: str, **fields: Any) -> JSON:
        event = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return event

    def _open(self, item: JSON) -> list[JSON]:
        self._opened[item["id"]] = len(self._opened)
        events = [self._event("response.output_item.added", output_index=self._opened[item["id"]], item=item)]
        if item["type"] == "message":
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            events.append(self._at(item["id"], "response.content_part.added", content_index=0, part=part))
        return events

    def _at(self, item_id: str, kind: str, **fields: Any) -> JSON:
        return self._event(kind, item_id=item_id, output_index=self._opened[item_id], **fields)

    def add(self, chunk: JSON) -> list[JSON]:
        """The events one chat chunk makes (the first also announces the response)."""
        events: list[JSON] = []
        if self.sequence == 0:
            events.append(self._event("response.created", response=self.response))
            events.append(self._event("response.in_progress", response=self.response))
        rid = self.response["id"]
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue  # the Responses API answers one choice
            delta = choice.get("delta") or {}
            text = delta.get("content")
            if isinstance(text, str) and text:
                mid = message_id(rid)
                if mid not in self._opened:
                    item = {"type": "message", "id": mid, "status": "in_progress", "role": "assistant", "content": []}
                    events += self._open(item)
                events.append(self._at(mid, "response.output_text.delta", content_index=0, delta=text, logprobs=[]))
            for call in delta.get("tool_calls") or []:
                events += self._call_delta(call)
        return events

    def _call_delta(self, call: JSON) -> list[JSON]:
        index = call.get("index", 0)
        function = call.get("function") or {}
        events: list[JSON] = []
        item_id = call_item_id(self.response["id"], index)
        if index not in self._calls:
            known = _Call(len(self._opened), call.get("id") or item_id, function.get("name") or "")
            self._calls[index] = known
            item = {"type": "function_call", "id": item_id, "call_id": known.call_id, "name": known.name}
            events += self._open({**item, "arguments": "", "status": "in_progress"})
        pieces = function.get("arguments")
        if isinstance(pieces, str) and pieces:
            self._calls[index].arguments += pieces
            events.append(self._at(item_id, "response.function_call_arguments.delta", delta=pieces))
        return events

    def close(self, final: JSON) -> list[JSON]:
        """Every output item done, then the final event with the whole response (as it is stored)."""
        events: list[JSON] = []
        for item in final.get("output") or []:
            if item["id"] not in self._opened:
                events += self._open({**item, "status": "in_progress"})
            if item["type"] == "message":
                for part in item.get("content") or []:
                    if part.get("type") == "output_text":
                        text = part["text"]
                        events.append(self._at(item["id"], "response.output_text.done", content_index=0, text=text))
                    events.append(self._at(item["id"], "response.content_part.done", content_index=0, part=part))
            elif item["type"] == "function_call":
                arguments = item["arguments"]
                events.append(self._at(item["id"], "response.function_call_arguments.done", arguments=arguments))
            events.append(self._event("response.output_item.done", output_index=self._opened[item["id"]], item=item))
        kind = "response.incomplete" if final.get("status") == "incomplete" else "response.completed"
        events.append(self._event(kind, response=final))
        return events


def failed_event(response: JSON, error: JSON, sequence: int) -> JSON:
    """`response.failed`: the stream ended with an error (numbered after the last event sent)."""
    failed = {**response, "status": "failed", "error": {"code": error.get("code"), "message": error.get("message")}}
    return {"type": "response.failed", "sequence_number": sequence, "response": failed}
