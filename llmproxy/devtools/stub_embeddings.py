"""The stub upstream's embeddings (`POST /v1/embeddings`, OpenAI and Mistral dialects): deterministic vectors.

Each input's vector depends only on the input and the dimensions asked for (`dimensions`, Mistral's
`output_dimension`; DEFAULT_DIMENSIONS otherwise). Its components are multiples of 1/128 in [-1, 1), exact
in float32, so a base64 answer decodes to exactly the floats of a float answer. Usage counts words of text
inputs and the length of token arrays (a cheap stand-in for a tokenizer), unless the script says otherwise.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from llmproxy.devtools.stub_responses import Behaviour, Ok
from llmproxy.jsontypes import JSON
from llmproxy.providers.embedding_answers import to_base64

DEFAULT_DIMENSIONS = 8
# What Mistral's embeddings endpoint takes; anything else is answered 422.
MISTRAL_EMBEDDING_FIELDS = frozenset({"model", "input", "output_dimension", "output_dtype", "encoding_format"})


def inputs_of(value: Any) -> list[Any]:
    """The request's inputs one by one: texts or token arrays."""
    if isinstance(value, list) and value and all(isinstance(item, int) for item in value):
        return [value]
    return value if isinstance(value, list) else [value]


def vector_for(item: Any, dimensions: int) -> list[float]:
    """The deterministic vector of one input."""
    seed = json.dumps(item).encode()
    out: list[float] = []
    block = 0
    while len(out) < dimensions:
        digest = hashlib.sha256(seed + block.to_bytes(4, "big")).digest()
        out.extend((byte - 128) / 128 for byte in digest)
        block += 1
    return out[:dimensions]


def _tokens(item: Any) -> int:
    return len(item) if isinstance(item, list) else len(str(item).split())


def embeddings_body(body: JSON, behaviour: Behaviour) -> JSON:
    """The answer to an embeddings request: one vector per input, encoded as asked, with usage."""
    dimensions = body.get("dimensions") or body.get("output_dimension") or DEFAULT_DIMENSIONS
    inputs = inputs_of(body.get("input"))
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    for index, item in enumerate(inputs):
        vector = vector_for(item, int(dimensions))
        data.append({"object": "embedding", "index": index, "embedding": to_base64(vector) if as_base64 else vector})
    answer: JSON = {"object": "list", "data": data, "model": body.get("model")}
    ok = behaviour if isinstance(behaviour, Ok) else Ok()
    if ok.usage:
        prompt = ok.prompt_tokens if ok.prompt_tokens is not None else sum(_tokens(item) for item in inputs)
        answer["usage"] = {"prompt_tokens": prompt, "total_tokens": prompt}
    return answer
