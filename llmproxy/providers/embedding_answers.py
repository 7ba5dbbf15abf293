"""OpenAI's embeddings answer: its schema, and a provider's answer in it, vectors as asked (floats or base64)."""

from __future__ import annotations

import base64
import struct
from typing import Any

from llmproxy import json_schema as js
from llmproxy.jsontypes import JSON

EMBEDDING_SCHEMA = js.record(
    {
        "object": js.const("embedding"),
        "index": js.integer(0),
        "embedding": js.one_of(js.array(js.number()), js.string()),
    }
)
EMBEDDING_RESPONSE_SCHEMA = js.record(
    {
        "object": js.const("list"),
        "data": js.array(EMBEDDING_SCHEMA),
        "model": js.string(),
        "usage": js.record({"prompt_tokens": js.integer(0), "total_tokens": js.integer(0)}),
    }
)


def to_base64(vector: list[float]) -> str:
    """OpenAI's base64 encoding of a vector: little-endian float32s."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def from_base64(text: str) -> list[float]:
    """A vector back from OpenAI's base64 encoding."""
    raw = base64.b64decode(text, validate=True)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw[: len(raw) - len(raw) % 4]))


def _vector(item: Any, wants_base64: bool) -> list[float] | str:
    vector = item.get("embedding") if isinstance(item, dict) else None
    if isinstance(vector, str):
        return vector if wants_base64 else from_base64(vector)
    if not isinstance(vector, list) or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in vector):
        raise ValueError("an embedding is neither a list of numbers nor base64")
    return to_base64(vector) if wants_base64 else vector


def normalise_embeddings(data: Any, *, model: str, wants_base64: bool) -> JSON:
    """OpenAI's embeddings list from a provider's answer, vectors encoded as asked (a lean server may ignore
    `encoding_format`); ValueError when the answer is not an embeddings list."""
    items = data.get("data") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise ValueError("the answer has no data list")
    embeddings = [
        {
            "object": "embedding",
            "index": item.get("index", index) if isinstance(item, dict) else index,
            "embedding": _vector(item, wants_base64),
        }
        for index, item in enumerate(items)
    ]
    return {"object": "list", "data": embeddings, "model": data.get("model") or model, "usage": data.get("usage")}
