"""The Anthropic adapter against the stub's Messages API over real HTTP: requests, answers, streams, errors."""

from __future__ import annotations

import json

import pytest

from llmproxy.devtools.stub_responses import BreakStream, Fail, Ok
from llmproxy.providers import (
    AnthropicProvider,
    Endpoint,
    ProviderAuthFailed,
    ProviderBadRequest,
    ProviderContextTooLong,
    ProviderModelNotFound,
    ProviderRateLimited,
    ProviderStreamBroken,
    ProviderUnavailable,
    Timeouts,
    get_provider,
)
from llmproxy.providers.anthropic_response import StreamTranslator, completion_from_message
from tests.support.chat_samples import PNG, TOOLS

KEY = "sk-ant-test-secret-0123456789"
FAST = Timeouts(connect=2.0, read=10.0)
BODY = {"model": "proxy-claude", "max_tokens": 100, "messages": [{"role": "user", "content": "hello there"}]}


@pytest.fixture
def claude(stub):
    """(provider, endpoint) on a fresh connection pool, pointed at the stub's Anthropic dialect."""
    provider = AnthropicProvider()
    yield provider, Endpoint(api_base=stub.anthropic_url, api_key=KEY, upstream_model="claude-up")
    provider.http.close()


def sent(stub):
    """The last request the stub received: (headers, body)."""
    request = stub.requests[-1]
    return request["headers"], request["body"]


# -- requests -----------------------------------------------------------------------


def test_registered_as_anthropic_and_capped_by_max_tokens():
    assert isinstance(get_provider("anthropic"), AnthropicProvider)
    assert AnthropicProvider.output_cap_field == "max_tokens"


def test_plain_request_and_answer(claude, stub):
    provider, endpoint = claude
    stub.script("claude-up", Ok(content="Hi there", prompt_tokens=11, completion_tokens=2))
    result = provider.complete(endpoint, BODY, timeouts=FAST)

    headers, body = sent(stub)
    assert stub.requests[-1]["path"] == "/anthropic/v1/messages"
    assert headers["x-api-key"] == KEY and headers["anthropic-version"] == "2023-06-01"
    assert "Authorization" not in headers
    assert body == {
        "model": "claude-up",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hello there"}]}],
    }
    assert result["object"] == "chat.completion" and result["id"].startswith("msg_")
    assert result["choices"] == [
        {"index": 0, "message": {"role": "assistant", "content": "Hi there"}, "finish_reason": "stop"}
    ]
    assert result["usage"] == {"prompt_tokens": 11, "completion_tokens": 2, "total_tokens": 13}


def test_system_and_developer_messages_become_the_system_prompt_and_turns_alternate(claude, stub):
    provider, endpoint = claude
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Bonjour"},
        {"role": "user", "content": "How are you?"},
        {"role": "user", "content": [{"type": "text", "text": "And the weather?"}]},
    ]
    body = {
        "model": "x",
        "messages": messages,
        "max_completion_tokens": 50,
        "max_tokens": 999,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": "END",
        "seed": 7,
        "logprobs": True,
        "presence_penalty": 0.5,
        "response_format": {"type": "text"},
        "stream_options": {"include_usage": True},
        "user": "u-42",
    }
    provider.complete(endpoint, body, timeouts=FAST)

    _, upstream = sent(stub)
    assert upstream["system"] == "Be brief.\n\nAnswer in French."
    assert upstream["max_tokens"] == 50  # max_completion_tokens wins, as the gateway reserves it
    assert (upstream["temperature"], upstream["top_p"], upstream["stop_sequences"]) == (0.2, 0.9, ["END"])
    assert upstream["metadata"] == {"user_id": "u-42"}
    assert [m["role"] for m in upstream["messages"]] == ["user", "assistant", "user"]
    assert [b["text"] for b in upstream["messages"][2]["content"]] == ["How are you?", "And the weather?"]
    assert set(upstream) == {
        "model",
        "messages",
        "max_tokens",
        "system",
        "temperature",
        "top_p",
        "stop_sequences",
        "metadata",
    }


def test_images_as_base64_and_url_sources(claude, stub):
    provider, endpoint = claude
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "low"}},
    ]
    provider.complete(endpoint, dict(BODY, messages=[{"role": "user", "content": content}]), timeouts=FAST)
    blocks = sent(stub)[1]["messages"][0]["content"]
    assert blocks[1] == {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    assert blocks[2] == {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}


def test_tools_tool_calls_and_merged_tool_results(claude, stub):
    provider, endpoint = claude
    messages = [
        {"role": "user", "content": "Weather in Paris and Oslo?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                },
                {
                    "id": "call_b",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_a", "content": "18C"},
        {"role": "tool", "tool_call_id": "call_b", "content": [{"type": "text", "text": "9C"}]},
    ]
    body = dict(BODY, messages=messages, tools=TOOLS, tool_choice="auto", parallel_tool_calls=False)
    provider.complete(endpoint, body, timeouts=FAST)

    upstream = sent(stub)[1]
    assert upstream["tools"] == [
        {
            "name": "get_weather",
            "input_schema": TOOLS[0]["function"]["parameters"],
            "description": "Weather in a city",
        }
    ]
    assert upstream["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    assistant, results = upstream["messages"][1], upstream["messages"][2]
    assert assistant == {
        "role": "assistant",
        "content": [
            {"type": "tool_use", "id": "call_a", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "call_b", "name": "get_weather", "input": {"city": "Oslo"}},
        ],
    }
    assert results == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "call_a", "content": "18C"},
            {"type": "tool_result", "tool_use_id": "call_b", "content": [{"type": "text", "text": "9C"}]},
        ],
    }


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"type": "auto"}),
        ("none", {"type": "none"}),
        ("required", {"type": "any"}),
        ({"type": "function", "function": {"name": "get_weather"}}, {"type": "tool", "name": "get_weather"}),
    ],
)
def test_tool_choice(claude, stub, choice, expected):
    provider, endpoint = claude
    provider.complete(endpoint, dict(BODY, tools=TOOLS, tool_choice=choice), timeouts=FAST)
    assert sent(stub)[1]["tool_choice"] == expected


def test_n_above_one_and_unparsable_arguments_are_refused_before_any_call(claude, stub):
    provider, endpoint = claude
    with pytest.raises(ProviderBadRequest) as caught:
        provider.complete(endpoint, dict(BODY, n=2), timeouts=FAST)
    assert caught.value.status_code == 400 and caught.value.upstream_body["error"]["param"] == "n"
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{not json"}}
    messages = [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [call]}]
    with pytest.raises(ProviderBadRequest):
        provider.complete(endpoint, dict(BODY, messages=messages), timeouts=FAST)
    assert stub.requests == []


# -- answers ----------------------------------------------------------------------------


def test_tool_use_answer_becomes_tool_calls(claude, stub):
    provider, endpoint = claude
    stub.script("claude-up", Ok(tool_calls=[{"name": "get_weather", "arguments": '{"city": "Paris"}'}]))
    result = provider.complete(endpoint, dict(BODY, tools=TOOLS), timeouts=FAST)
    choice = result["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    (call,) = choice["message"]["tool_calls"]
    assert (call["id"], call["type"], call["function"]["name"]) == ("toolu_stub0", "function", "get_weather")
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}


def test_max_tokens_stop_reason_is_length(claude, stub):
    provider, endpoint = claude
    result = provider.complete(
        endpoint, dict(BODY, max_tokens=2, messages=[{"role": "user", "content": "a b c d"}]), timeouts=FAST
    )
    assert result["choices"][0]["finish_reason"] == "length"


def test_cache_tokens_are_part_of_the_prompt_with_reads_and_writes_apart(claude, stub):
    provider, endpoint = claude
    stub.script(
        "claude-up",
        Ok(content="ok", prompt_tokens=10, completion_tokens=1, cache_read_tokens=300, cache_write_tokens=50),
    )
    usage = provider.complete(endpoint, BODY, timeouts=FAST)["usage"]
    assert usage == {
        "prompt_tokens": 360,
        "completion_tokens": 1,
        "total_tokens": 361,
        "prompt_tokens_details": {"cached_tokens": 300, "cache_write_tokens": 50},
    }


# -- streams --------------------------------------------------------------------------------


def test_stream_of_text(claude, stub):
    provider, endpoint = claude
    stub.script("claude-up", Ok(content="one two three", prompt_tokens=5, cache_read_tokens=4))
    chunks = list(provider.stream(endpoint, dict(BODY, stream=True), timeouts=FAST))

    assert sent(stub)[1]["stream"] is True
    assert all(c["object"] == "chat.completion.chunk" for c in chunks) and len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = [c["choices"][0]["delta"]["content"] for c in chunks[1:-2]]
    assert text == ["one ", "two ", "three"]
    assert chunks[-2]["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "stop"}
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {
        "prompt_tokens": 9,
        "completion_tokens": 3,
        "total_tokens": 12,
        "prompt_tokens_details": {"cached_tokens": 4, "cache_write_tokens": 0},
    }


def test_stream_of_tool_calls(claude, stub):
    provider, endpoint = claude
    calls = [
        {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        {"name": "get_time", "arguments": '{"tz": "CET"}'},
    ]
    stub.script("claude-up", Ok(tool_calls=calls))
    chunks = list(provider.stream(endpoint, dict(BODY, stream=True, tools=TOOLS), timeouts=FAST))

    deltas = [
        c["choices"][0]["delta"]["tool_calls"][0]
        for c in chunks
        if c["choices"] and "tool_calls" in c["choices"][0]["delta"]
    ]
    heads = [d for d in deltas if "id" in d]
    assert [(h["index"], h["id"], h["function"]["name"]) for h in heads] == [
        (0, "toolu_stub0", "get_weather"),
        (1, "toolu_stub1", "get_time"),
    ]
    for index, call in enumerate(calls):
        pieces = [d["function"]["arguments"] for d in deltas if d["index"] == index and "id" not in d]
        assert len(pieces) > 1 and json.loads("".join(pieces)) == json.loads(call["arguments"])
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["usage"]["completion_tokens"] > 0


def test_error_event_before_any_content_is_a_retryable_failure_with_nothing_yielded(claude, stub):
    provider, endpoint = claude
    stub.script("claude-up", BreakStream(after_chunks=2, error_type="overloaded_error"))
    with pytest.raises(ProviderUnavailable) as caught:
        list(provider.stream(endpoint, dict(BODY, stream=True), timeouts=FAST))
    assert caught.value.retryable and caught.value.chunks_received == 0
    assert "overloaded_error" in caught.value.message


def test_error_event_mid_stream_keeps_the_chunks_count(claude, stub):
    provider, endpoint = claude
    stub.script("claude-up", BreakStream(after_chunks=5, error_type="api_error", content="a b c d e f"))
    with pytest.raises(ProviderUnavailable) as caught:
        list(provider.stream(endpoint, dict(BODY, stream=True), timeouts=FAST))
    assert caught.value.chunks_received == 3  # the role chunk and two text deltas


def test_dropped_stream_is_broken(claude, stub):
    provider, endpoint = claude
    stub.script("claude-up", BreakStream(after_chunks=4, content="a b c d"))
    with pytest.raises(ProviderStreamBroken) as caught:
        list(provider.stream(endpoint, dict(BODY, stream=True), timeouts=FAST))
    assert caught.value.chunks_received >= 1


# -- errors -----------------------------------------------------------------------------------


def test_overloaded_529_is_retryable_like_503(claude, stub):
    provider, endpoint = claude
    stub.script("claude-up", Fail(529))
    with pytest.raises(ProviderUnavailable) as caught:
        provider.complete(endpoint, BODY, timeouts=FAST)
    assert caught.value.retryable and caught.value.status_code == 529


def test_rate_limit_honours_retry_after(claude, stub):
    provider, endpoint = claude
    stub.script("claude-up", Fail(429, retry_after=7))
    with pytest.raises(ProviderRateLimited) as caught:
        provider.complete(endpoint, BODY, timeouts=FAST)
    assert caught.value.retryable and caught.value.retry_after == 7.0


def test_auth_failures_and_missing_key_fall_back_at_once(claude, stub):
    provider, endpoint = claude
    with pytest.raises(ProviderAuthFailed) as caught:
        provider.complete(Endpoint(endpoint.api_base, "bad-key-123", "claude-up"), BODY, timeouts=FAST)
    assert caught.value.fallback_now and caught.value.status_code == 401
    stub.script("claude-up", Fail(403))
    with pytest.raises(ProviderAuthFailed):
        provider.complete(endpoint, BODY, timeouts=FAST)
    with pytest.raises(ProviderAuthFailed):
        provider.complete(Endpoint(endpoint.api_base, None, "claude-up"), BODY, timeouts=FAST)


def test_bad_request_unknown_model_and_long_prompt(claude, stub):
    provider, endpoint = claude
    stub.script("claude-up", Fail(400))
    with pytest.raises(ProviderBadRequest) as caught:
        provider.complete(endpoint, BODY, timeouts=FAST)
    assert not caught.value.retryable and not caught.value.fallback_now
    with pytest.raises(ProviderModelNotFound):
        provider.complete(Endpoint(endpoint.api_base, KEY, "missing-claude"), BODY, timeouts=FAST)
    too_long = {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "prompt is too long: 210000 tokens > 200000 maximum"},
    }
    stub.script("claude-up", Fail(400, body=too_long))
    with pytest.raises(ProviderContextTooLong):
        provider.complete(endpoint, BODY, timeouts=FAST)


def test_the_key_never_leaks_into_an_error(claude, stub):
    provider, endpoint = claude
    echo = {"type": "error", "error": {"type": "invalid_request_error", "message": f"bad key {KEY}"}}
    stub.script("claude-up", Fail(400, body=echo))
    with pytest.raises(ProviderBadRequest) as caught:
        provider.complete(endpoint, BODY, timeouts=FAST)
    assert KEY not in caught.value.message and KEY not in json.dumps(caught.value.upstream_body)


# -- answer details the stub does not produce -------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
    ],
)
def test_stop_reasons(reason, finish):
    message = {"id": "msg_1", "model": "claude-up", "content": [], "stop_reason": reason}
    assert completion_from_message(message, "claude-up")["choices"][0]["finish_reason"] == finish


def test_thinking_blocks_are_dropped_and_text_blocks_joined():
    message = {
        "id": "msg_1",
        "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "sig"},
            {"type": "text", "text": "Hello, "},
            {"type": "redacted_thinking", "data": "xxx"},
            {"type": "text", "text": "world."},
        ],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 3, "output_tokens": 4},
    }
    result = completion_from_message(message, "claude-up")
    assert result["choices"][0]["message"] == {"role": "assistant", "content": "Hello, world."}
    assert result["model"] == "claude-up"
    assert result["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}


def test_stream_usage_takes_the_cumulative_counts_of_message_delta():
    translator = StreamTranslator("claude-up")
    start = {"id": "msg_9", "model": "claude-up", "usage": {"input_tokens": 5, "output_tokens": 1}}
    events = [
        {"type": "message_start", "message": start},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "so"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Hi"}},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": 7, "input_tokens": 6},
        },
    ]
    chunks = [c for e in events for c in translator.chunks(e)]
    assert not translator.finished
    assert [c["choices"][0]["delta"] for c in chunks] == [{"role": "assistant", "content": ""}, {"content": "Hi"}]
    finish, usage = translator.chunks({"type": "message_stop"})
    assert translator.finished and finish["choices"][0]["finish_reason"] == "stop"
    assert usage["id"] == "msg_9" and usage["choices"] == []
    assert usage["usage"] == {"prompt_tokens": 6, "completion_tokens": 7, "total_tokens": 13}


def test_cache_control_marks_on_text_parts_and_tools_are_kept(claude, stub):
    provider, endpoint = claude
    mark = {"type": "ephemeral"}
    content = [
        {"type": "text", "text": "A long document…", "cache_control": mark},
        {"type": "text", "text": "Summarise it."},
    ]
    tools = [dict(TOOLS[0], cache_control=mark)]
    provider.complete(endpoint, dict(BODY, messages=[{"role": "user", "content": content}], tools=tools), timeouts=FAST)
    upstream = sent(stub)[1]
    assert upstream["messages"][0]["content"] == [
        {"type": "text", "text": "A long document…", "cache_control": mark},
        {"type": "text", "text": "Summarise it."},
    ]
    assert upstream["tools"][0]["cache_control"] == mark
