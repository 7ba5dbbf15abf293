"""Mistral's chat completions API (kind "mistral"): OpenAI's protocol with a different dialect.

Request translation (OpenAI body -> Mistral body), from Mistral's API reference:
- `seed` -> `random_seed`; `max_completion_tokens` -> `max_tokens` (it wins when both are set).
- `tool_choice: "required"` -> `"any"` (older Mistral models know only "any"; both mean
  "must call a tool"). "auto", "none" and `{"type": "function", ...}` pass through.
- Only fields Mistral documents are sent: model, messages, temperature, top_p, max_tokens,
  stream, stop, random_seed, response_format, tools, tool_choice, presence_penalty,
  frequency_penalty, n, prediction, parallel_tool_calls, safe_prompt, prompt_mode.
  Everything else is dropped, because Mistral answers 422 "Extra inputs are not
  permitted" for unknown fields: notably logit_bias, logprobs, top_logprobs, user,
  stream_options, service_tier, store, metadata, modalities, audio, reasoning_effort,
  functions/function_call (legacy), prompt_cache_key. None values are dropped too.
- Messages: role "developer" -> "system"; `name` is kept only on tool messages and other
  OpenAI-only message fields (refusal, annotations, audio) are dropped.
- Tool call ids must be exactly 9 characters [a-zA-Z0-9] at Mistral; OpenAI ids
  ("call_...") are mapped to a stable 9-character hash, applied alike to assistant
  `tool_calls[].id` and tool `tool_call_id` so the pairs still match.
- `stream_options` is not sent: Mistral puts usage in its final stream chunk anyway.

Response normalisation (Mistral -> OpenAI shape):
- finish_reason "model_length" -> "length" ("error" and the OpenAI values pass through).
- Mistral's final stream chunk carries both the finish_reason and `usage`; it is split
  into OpenAI's two chunks: the finish chunk, then `{"choices": [], "usage": ...}`.
- `prefix` is removed from messages/deltas; tool call `arguments` given as an object are
  serialised to a JSON string; stream tool calls get an `index`; content given as a list
  of parts keeps only the text parts (reasoning "thinking" parts are dropped).
"""

from __future__ import annotations

import hashlib
import json
import re

from llmproxy.jsontypes import JSON
from llmproxy.providers.contract import Endpoint
from llmproxy.providers.openai import OpenAIProvider
from llmproxy.providers.registry import register

_FIELDS = frozenset(
    {
        "model",
        "messages",
        "temperature",
        "top_p",
        "max_tokens",
        "stream",
        "stop",
        "random_seed",
        "response_format",
        "tools",
        "tool_choice",
        "presence_penalty",
        "frequency_penalty",
        "n",
        "prediction",
        "parallel_tool_calls",
        "safe_prompt",
        "prompt_mode",
    }
)
_RENAMED = {"seed": "random_seed"}
_MESSAGE_FIELDS = frozenset({"role", "content", "tool_calls", "tool_call_id", "prefix"})
_FINISH_REASONS: dict[str | None, str] = {"model_length": "length"}
_MISTRAL_TOOL_ID = re.compile(r"[a-zA-Z0-9]{9}")
_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


@register("mistral")
class MistralProvider(OpenAIProvider):
    """POST {api_base}/chat/completions in Mistral's dialect; answers normalised to OpenAI's."""

    responds = False  # only OpenAI itself is sure to have /responses: the chat translation is used

    output_cap_field = "max_tokens"

    def prepare_body(self, endpoint: Endpoint, body: JSON, *, stream: bool) -> JSON:
        """Translate an OpenAI request body into Mistral's (see the module docstring)."""
        payload: JSON = {}
        for key, value in body.items():
            key = _RENAMED.get(key, key)
            if key in _FIELDS and value is not None:
                payload[key] = value
        if body.get("max_completion_tokens") is not None:
            payload["max_tokens"] = body["max_completion_tokens"]
        if payload.get("tool_choice") == "required":
            payload["tool_choice"] = "any"
        payload["messages"] = [_message(m) for m in body.get("messages") or []]
        payload["model"] = endpoint.upstream_model
        payload["stream"] = stream
        return payload

    def prepare_embedding_body(self, endpoint: Endpoint, body: JSON) -> JSON:
        """OpenAI's embeddings body in Mistral's words: `dimensions` -> `output_dimension`; fields it does not
        know (`user`, ...) dropped, since it answers 422 to them."""
        payload: JSON = {"model": endpoint.upstream_model, "input": body.get("input")}
        if body.get("dimensions") is not None:
            payload["output_dimension"] = body["dimensions"]
        if body.get("encoding_format") is not None:
            payload["encoding_format"] = body["encoding_format"]
        return payload

    def normalise_completion(self, data: JSON, endpoint: Endpoint) -> JSON:
        """Mistral's chat completion in OpenAI's shape."""
        for choice in data.get("choices") or []:
            _normalise_choice(choice, "message")
        return super().normalise_completion(data, endpoint)

    def normalise_chunk(self, chunk: JSON, defaults: JSON) -> list[JSON]:
        """One Mistral chunk as OpenAI chunks; a final chunk with usage becomes two."""
        chunk = super().normalise_chunk(chunk, defaults)[0]
        for choice in chunk.get("choices") or []:
            _normalise_choice(choice, "delta")
        usage = chunk.get("usage")
        if usage is None or not chunk.get("choices"):
            return [chunk]
        chunk["usage"] = None
        usage_chunk = {k: chunk[k] for k in ("id", "object", "created", "model")}
        usage_chunk.update(choices=[], usage=usage)
        return [chunk, usage_chunk]


def _message(message: JSON) -> JSON:
    """One OpenAI message in Mistral's form."""
    if not isinstance(message, dict):
        return message
    out = {k: v for k, v in message.items() if k in _MESSAGE_FIELDS}
    if out.get("role") == "developer":
        out["role"] = "system"
    if out.get("role") == "tool":
        if message.get("name") is not None:
            out["name"] = message["name"]
        if out.get("tool_call_id") is not None:
            out["tool_call_id"] = _tool_id(out["tool_call_id"])
    if isinstance(out.get("tool_calls"), list):
        out["tool_calls"] = [
            {**call, "id": _tool_id(call["id"])} if isinstance(call, dict) and call.get("id") else call
            for call in out["tool_calls"]
        ]
    return out


def _tool_id(value: str) -> str:
    """A Mistral-valid tool call id; ids already valid are kept so Mistral's own round-trip."""
    value = str(value)
    if _MISTRAL_TOOL_ID.fullmatch(value):
        return value
    digest = hashlib.sha256(value.encode()).digest()
    return "".join(_ALPHABET[b % len(_ALPHABET)] for b in digest[:9])


def _normalise_choice(choice: JSON, part: str) -> None:
    """finish_reason, content parts, tool calls and Mistral-only fields, in place."""
    reason = choice.get("finish_reason")
    choice["finish_reason"] = _FINISH_REASONS.get(reason, reason)
    msg = choice.get(part)
    if not isinstance(msg, dict):
        return
    msg.pop("prefix", None)
    if isinstance(msg.get("content"), list):
        msg["content"] = "".join(
            p.get("text", "") for p in msg["content"] if isinstance(p, dict) and p.get("type") == "text"
        )
    for position, call in enumerate(msg.get("tool_calls") or []):
        if not isinstance(call, dict):
            continue
        call.setdefault("type", "function")
        if part == "delta":
            call.setdefault("index", position)
        function = call.get("function")
        if isinstance(function, dict) and isinstance(function.get("arguments"), (dict, list)):
            function["arguments"] = json.dumps(function["arguments"])
