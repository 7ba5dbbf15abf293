"""The embeddings answer as the caller asked for it, and what an embedding request counts."""

from __future__ import annotations

import base64
import struct

import pytest

from llmproxy.chat.tokens import count_text_tokens
from llmproxy.embeddings.tokens import count_input_tokens, estimate_embedding
from llmproxy.providers import AnthropicProvider, Endpoint, ProviderModelNotFound, Timeouts
from llmproxy.providers.embedding_answers import from_base64, normalise_embeddings, to_base64


def test_base64_is_little_endian_float32_both_ways():
    vector = [0.5, -0.25, 1.0, 0.0]
    encoded = to_base64(vector)
    assert base64.b64decode(encoded) == struct.pack("<4f", *vector)
    assert from_base64(encoded) == vector


def test_floats_are_encoded_when_base64_was_asked_and_decoded_when_not():
    floats = {"data": [{"embedding": [0.5, 0.25]}, {"index": 1, "embedding": [1.0]}], "model": "up"}
    got = normalise_embeddings(floats, model="m", wants_base64=True)
    assert got == {
        "object": "list",
        "data": [
            {"object": "embedding", "index": 0, "embedding": to_base64([0.5, 0.25])},
            {"object": "embedding", "index": 1, "embedding": to_base64([1.0])},
        ],
        "model": "up",
        "usage": None,
    }
    encoded = {"data": [{"embedding": to_base64([0.5])}], "usage": {"prompt_tokens": 2}}
    assert normalise_embeddings(encoded, model="m", wants_base64=False)["data"][0]["embedding"] == [0.5]
    assert normalise_embeddings(encoded, model="m", wants_base64=False)["model"] == "m"


@pytest.mark.parametrize(
    "answer",
    [
        None,
        {"data": "nope"},
        {"data": [{"embedding": ["a"]}]},
        {"data": [{"embedding": [True]}]},
        {"data": [{}]},
        {"data": [{"embedding": "!!not base64!!"}]},
    ],
)
def test_an_answer_that_is_no_embeddings_list_is_refused(answer):
    with pytest.raises(ValueError):
        normalise_embeddings(answer, model="m", wants_base64=False)


def test_input_tokens_count_texts_with_the_encoding_and_token_arrays_by_length():
    model = "text-embedding-3-small"
    text = "Counting tokens of an embedding input."
    assert count_input_tokens(text, model) == count_text_tokens(text, model) > 0
    assert count_input_tokens([text, "more"], model) == count_text_tokens(text, model) + count_text_tokens(
        "more", model
    )
    assert count_input_tokens([1, 2, 3], model) == 3
    assert count_input_tokens([[1, 2], [3]], model) == 3
    assert estimate_embedding({"model": model, "input": [[1, 2], [3]]}) == (3, 0)


def test_a_provider_without_embeddings_passes_the_request_on():
    with pytest.raises(ProviderModelNotFound) as caught:
        AnthropicProvider().embed(Endpoint("http://127.0.0.1:9", "k", "m"), {"input": "x"}, timeouts=Timeouts())
    assert caught.value.fallback_now and not AnthropicProvider.embeds
