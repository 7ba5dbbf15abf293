"""The provider adapters against a real HTTP stub upstream on loopback (no mocks)."""

from __future__ import annotations

import email.utils
import json
import re
import time

import pytest
import urllib3

from llmproxy.devtools.net import free_port
from llmproxy.devtools.stub_responses import BreakStream, Fail, Hang, Ok, Slow
from llmproxy.devtools.waiting import wait_for
from llmproxy.providers import (
    Endpoint,
    MistralProvider,
    OpenAICompatibleProvider,
    OpenAIProvider,
    ProviderAuthFailed,
    ProviderBadRequest,
    ProviderConnectionError,
    ProviderContextTooLong,
    ProviderModelNotFound,
    ProviderRateLimited,
    ProviderStreamBroken,
    ProviderTimeout,
    ProviderUnavailable,
    Timeouts,
    error_from_response,
    get_provider,
    provider_kinds,
)
from llmproxy.providers.error_mapping import error_from_exception
from llmproxy.providers.transport import Http

KEY = "sk-test-secret-0123456789"
FAST = Timeouts(connect=2.0, read=10.0)
BODY = {"model": "proxy-model", "messages": [{"role": "user", "content": "hello there"}]}


@pytest.fixture(params=["openai", "openai_compatible", "mistral"])
def adapter(request, stub):
    """(provider, endpoint) for each kind, on a fresh session, pointed at the stub."""
    provider = {"openai": OpenAIProvider, "openai_compatible": OpenAICompatibleProvider, "mistral": MistralProvider}[
        request.param
    ]()
    base = stub.mistral_url if request.param == "mistral" else stub.url
    yield provider, Endpoint(api_base=base, api_key=KEY, upstream_model="up-model")
    provider.http.close()


# -- registry ------------------------------------------------------------------


def test_registry_lists_kinds_and_shares_one_instance_per_kind():
    assert provider_kinds() == ["anthropic", "mistral", "openai", "openai_compatible"]
    assert get_provider("openai") is get_provider("openai")
    assert isinstance(get_provider("mistral"), MistralProvider)
    assert type(get_provider("openai_compatible")) is OpenAICompatibleProvider
    with pytest.raises(KeyError):
        get_provider("nope")


# -- happy paths -----------------------------------------------------------------


def test_complete_returns_openai_completion(adapter, stub):
    provider, endpoint = adapter
    stub.script("up-model", Ok(content="hi there", prompt_tokens=7, completion_tokens=2))
    result = provider.complete(endpoint, dict(BODY, stream_options={"include_usage": True}), timeouts=FAST)
    assert result["object"] == "chat.completion"
    assert result["id"] and result["created"] and result["model"] == "up-model"
    message = result["choices"][0]["message"]
    assert message["role"] == "assistant" and message["content"] == "hi there"
    assert "prefix" not in message  # Mistral's own field is not passed on
    assert result["choices"][0]["finish_reason"] == "stop"
    assert result["usage"] == {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}
    sent = stub.requests[-1]
    assert sent["headers"]["Authorization"] == f"Bearer {KEY}"
    assert sent["body"]["model"] == "up-model"
    assert sent["body"]["stream"] is False
    assert "stream_options" not in sent["body"]


def test_stream_yields_chunks_in_order_with_usage_last(adapter, stub):
    provider, endpoint = adapter
    stub.script("up-model", Ok(content="one two three four", prompt_tokens=5))
    chunks = list(provider.stream(endpoint, dict(BODY, stream=True), timeouts=FAST))
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "one two three four"
    assert len([c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")]) == 4
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}
    assert len({c["id"] for c in chunks}) == 1
    sent = stub.requests[-1]["body"]
    assert sent["stream"] is True
    if provider.kind == "mistral":
        assert "stream_options" not in sent  # Mistral sends usage without being asked
    else:
        assert sent["stream_options"] == {"include_usage": True}


def test_stream_forces_usage_even_when_the_caller_declined(stub):
    provider = OpenAIProvider()
    endpoint = Endpoint(stub.url, KEY, "gpt-4o-mini")
    body = dict(BODY, stream=True, stream_options={"include_usage": False})
    chunks = list(provider.stream(endpoint, body, timeouts=FAST))
    assert chunks[-1]["usage"]["total_tokens"] > 0
    assert stub.requests[-1]["body"]["stream_options"] == {"include_usage": True}


def test_streams_reuse_the_pooled_connection(stub):
    provider = OpenAIProvider()
    endpoint = Endpoint(stub.url, KEY, "gpt-4o-mini")
    for _ in range(3):
        list(provider.stream(endpoint, dict(BODY, stream=True), timeouts=FAST))
    provider.complete(endpoint, BODY, timeouts=FAST)
    assert len({r["client"] for r in stub.requests}) == 1


def test_slow_upstream_still_succeeds(stub):
    stub.script("up-model", Slow(0.05, content="late"))
    result = OpenAIProvider().complete(Endpoint(stub.url, KEY, "up-model"), BODY, timeouts=FAST)
    assert result["choices"][0]["message"]["content"] == "late"


# -- openai_compatible specifics ---------------------------------------------------


def test_openai_compatible_without_key_sends_no_authorization(stub):
    provider = OpenAICompatibleProvider()
    result = provider.complete(Endpoint(stub.url, None, "llama3"), BODY, timeouts=FAST)
    assert result["choices"][0]["message"]["content"] == "echo: hello there"
    assert "Authorization" not in stub.requests[-1]["headers"]


def test_openai_requires_a_key_and_makes_no_call(stub):
    with pytest.raises(ProviderAuthFailed) as info:
        OpenAIProvider().complete(Endpoint(stub.url, None, "gpt-4o-mini"), BODY, timeouts=FAST)
    assert info.value.fallback_now
    assert stub.requests == []


def test_missing_usage_is_reported_as_none(stub):
    stub.script("llama3", Ok(usage=False), Ok(usage=False))
    provider = OpenAICompatibleProvider()
    endpoint = Endpoint(stub.url, None, "llama3")
    assert provider.complete(endpoint, BODY, timeouts=FAST)["usage"] is None
    chunks = list(provider.stream(endpoint, dict(BODY, stream=True), timeouts=FAST))
    assert not any(c.get("usage") for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_lean_server_responses_get_openai_fields_filled():
    provider = OpenAICompatibleProvider()
    endpoint = Endpoint("http://unused", None, "llama3")
    bare = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "x"}, "finish_reason": "stop"}]}
    result = provider.normalise_completion(bare, endpoint)
    assert result["object"] == "chat.completion" and result["model"] == "llama3"
    assert result["id"].startswith("chatcmpl-") and isinstance(result["created"], int)
    assert result["usage"] is None
    defaults = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "llama3"}
    [chunk] = provider.normalise_chunk({"choices": []}, defaults)
    assert chunk == {"choices": [], **defaults}


# -- failure taxonomy ----------------------------------------------------------------


def _http_date(seconds_ahead: int) -> str:
    return email.utils.formatdate(time.time() + seconds_ahead, usegmt=True)


FAILURES = [
    (Fail(429, retry_after=2), ProviderRateLimited, 429),
    (Fail(429, headers={"retry-after-ms": "1500", "retry-after": "2"}), ProviderRateLimited, 429),
    (Fail(500), ProviderUnavailable, 500),
    (Fail(502), ProviderUnavailable, 502),
    (Fail(503, retry_after=3), ProviderUnavailable, 503),
    (Fail(504), ProviderUnavailable, 504),
    (Fail(529), ProviderUnavailable, 529),
    (Fail(408), ProviderUnavailable, 408),
    (Fail(401), ProviderAuthFailed, 401),
    (Fail(403), ProviderAuthFailed, 403),
    (Fail(404), ProviderModelNotFound, 404),
    (Fail.context_length(), ProviderContextTooLong, 400),
    (Fail(400), ProviderBadRequest, 400),
    (Fail(422), ProviderBadRequest, 422),
]
EXPECTED_RETRY_AFTER = {0: 2.0, 1: 1.5, 4: 3.0}


@pytest.mark.parametrize("streaming", [False, True], ids=["complete", "stream"])
@pytest.mark.parametrize("index", range(len(FAILURES)), ids=[f"{f[0].status}-{f[1].__name__}" for f in FAILURES])
def test_http_failures_map_to_the_taxonomy(adapter, stub, index, streaming):
    provider, endpoint = adapter
    behaviour, expected, status = FAILURES[index]
    stub.script("up-model", behaviour)
    with pytest.raises(expected) as info:
        if streaming:
            next(provider.stream(endpoint, dict(BODY, stream=True), timeouts=FAST))
        else:
            provider.complete(endpoint, BODY, timeouts=FAST)
    err = info.value
    assert err.status_code == status
    assert err.retry_after == EXPECTED_RETRY_AFTER.get(index)
    assert err.message.startswith(f"{provider.kind}: HTTP {status}")
    assert err.upstream_body["error"]["message"]
    if streaming:
        assert err.chunks_received == 0


def test_taxonomy_flags():
    assert ProviderRateLimited("x").retryable and not ProviderRateLimited("x").fallback_now
    for cls in (ProviderUnavailable, ProviderTimeout, ProviderConnectionError, ProviderStreamBroken):
        assert cls("x").retryable and not cls("x").fallback_now
    for cls in (ProviderAuthFailed, ProviderModelNotFound, ProviderContextTooLong):
        assert cls("x").fallback_now and not cls("x").retryable
    assert not ProviderBadRequest("x").retryable and not ProviderBadRequest("x").fallback_now
    outcomes = {
        cls("x").outcome
        for cls in (
            ProviderRateLimited,
            ProviderUnavailable,
            ProviderTimeout,
            ProviderConnectionError,
            ProviderAuthFailed,
            ProviderModelNotFound,
            ProviderContextTooLong,
            ProviderBadRequest,
            ProviderStreamBroken,
        )
    }
    assert outcomes == {
        "rate_limited",
        "unavailable",
        "timeout",
        "connection_error",
        "auth_failed",
        "model_not_found",
        "context_too_long",
        "bad_request",
        "stream_broken",
    }


def test_bad_request_carries_the_upstream_body_for_the_caller(stub):
    body = {
        "error": {
            "message": "Invalid 'temperature': 5",
            "type": "invalid_request_error",
            "param": "temperature",
            "code": "invalid_value",
        }
    }
    stub.script("gpt-4o-mini", Fail(400, body=body))
    with pytest.raises(ProviderBadRequest) as info:
        OpenAIProvider().complete(Endpoint(stub.url, KEY, "gpt-4o-mini"), BODY, timeouts=FAST)
    assert info.value.upstream_body == body
    assert not info.value.retryable and not info.value.fallback_now


def test_retry_after_as_http_date(stub):
    stub.script("gpt-4o-mini", Fail(429, retry_after=_http_date(30)))
    with pytest.raises(ProviderRateLimited) as info:
        OpenAIProvider().complete(Endpoint(stub.url, KEY, "gpt-4o-mini"), BODY, timeouts=FAST)
    assert 0 < info.value.retry_after <= 31


def test_insufficient_quota_falls_back_instead_of_retrying(stub):
    quota = {
        "error": {
            "message": "You exceeded your current quota.",
            "type": "insufficient_quota",
            "param": None,
            "code": "insufficient_quota",
        }
    }
    stub.script("gpt-4o-mini", Fail(429, body=quota))
    with pytest.raises(ProviderRateLimited) as info:
        OpenAIProvider().complete(Endpoint(stub.url, KEY, "gpt-4o-mini"), BODY, timeouts=FAST)
    assert info.value.fallback_now and not info.value.retryable


def test_invalid_key_is_auth_failed_and_never_leaks(adapter, stub):
    provider, endpoint = adapter
    bad_key = "bad-sk-live-abcdef0123456789"
    endpoint = Endpoint(endpoint.api_base, bad_key, endpoint.upstream_model)
    for call in (
        lambda: provider.complete(endpoint, BODY, timeouts=FAST),
        lambda: list(provider.stream(endpoint, dict(BODY, stream=True), timeouts=FAST)),
    ):
        with pytest.raises(ProviderAuthFailed) as info:
            call()
        err = info.value
        assert err.status_code == 401 and err.fallback_now
        for text in (str(err), err.message, repr(err), json.dumps(err.upstream_body)):
            assert bad_key not in text


def test_unknown_upstream_model_is_model_not_found(adapter):
    provider, endpoint = adapter
    endpoint = Endpoint(endpoint.api_base, KEY, "missing-model")
    with pytest.raises(ProviderModelNotFound) as info:
        provider.complete(endpoint, BODY, timeouts=FAST)
    assert info.value.fallback_now and info.value.status_code == 404


def test_hang_beyond_read_timeout_is_a_timeout(adapter, stub):
    provider, endpoint = adapter
    stub.script("up-model", Hang(30), Hang(30))
    short = Timeouts(connect=2.0, read=0.2)
    with pytest.raises(ProviderTimeout):
        provider.complete(endpoint, BODY, timeouts=short)
    with pytest.raises(ProviderTimeout) as info:
        next(provider.stream(endpoint, dict(BODY, stream=True), timeouts=short))
    assert info.value.retryable and info.value.chunks_received == 0


def test_connection_refused_is_a_connection_error(adapter):
    provider, _ = adapter
    endpoint = Endpoint(f"http://127.0.0.1:{free_port()}/v1", KEY, "up-model")
    with pytest.raises(ProviderConnectionError) as info:
        provider.complete(endpoint, BODY, timeouts=FAST)
    assert info.value.retryable
    with pytest.raises(ProviderConnectionError):
        next(provider.stream(endpoint, dict(BODY, stream=True), timeouts=FAST))


@pytest.mark.parametrize("api_base", ["not a url", "ftp://example.com/v1", "http://", "localhost:8000/v1"])
def test_invalid_api_base_is_not_retried(api_base):
    with pytest.raises(ProviderConnectionError) as info:
        OpenAIProvider().complete(Endpoint(api_base, KEY, "m"), BODY, timeouts=FAST)
    assert not info.value.retryable and info.value.fallback_now


def test_the_environments_proxy_is_used_unless_no_proxy_names_the_host(stub, monkeypatch):
    """HTTP_PROXY as requests honoured it: the stub plays the proxy and answers the absolute URL it was asked
    for with a 404 (it serves only its own paths); the same host in NO_PROXY is dialled directly and never resolves."""
    for name in ("HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", stub.base_url)
    endpoint = Endpoint("http://upstream.invalid/v1", KEY, "up-model")
    with pytest.raises(ProviderModelNotFound, match=re.escape("No route POST http://upstream.invalid/v1/chat/")):
        OpenAIProvider(Http()).complete(endpoint, BODY, timeouts=FAST)
    monkeypatch.setenv("NO_PROXY", "upstream.invalid")
    with pytest.raises(ProviderConnectionError) as info:
        OpenAIProvider(Http()).complete(endpoint, BODY, timeouts=FAST)
    assert info.value.retryable


@pytest.mark.parametrize(
    ("exc", "mid_stream", "kind", "retryable"),
    [
        (urllib3.exceptions.NewConnectionError(None, "refused"), False, ProviderConnectionError, True),
        (urllib3.exceptions.ConnectTimeoutError("slow"), False, ProviderTimeout, True),
        (urllib3.exceptions.ReadTimeoutError(None, "/", "read"), True, ProviderTimeout, True),
        (urllib3.exceptions.ProtocolError("reset"), True, ProviderStreamBroken, True),
        (urllib3.exceptions.ProtocolError("reset"), False, ProviderConnectionError, True),
        (ConnectionResetError(), False, ProviderConnectionError, True),
        (urllib3.exceptions.LocationParseError("x"), False, ProviderConnectionError, False),
    ],
)
def test_transport_exceptions_map_into_the_taxonomy(exc, mid_stream, kind, retryable):
    err = error_from_exception(exc, provider="p", mid_stream=mid_stream)
    assert type(err) is kind and err.retryable is retryable


def test_dropped_connection_on_complete_is_a_connection_error(adapter, stub):
    provider, endpoint = adapter
    stub.script("up-model", BreakStream(0))
    with pytest.raises(ProviderConnectionError):
        provider.complete(endpoint, BODY, timeouts=FAST)


def test_stream_dropped_before_any_chunk(adapter, stub):
    provider, endpoint = adapter
    stub.script("up-model", BreakStream(0))
    gen = provider.stream(endpoint, dict(BODY, stream=True), timeouts=FAST)
    with pytest.raises(ProviderStreamBroken) as info:
        next(gen)
    assert info.value.chunks_received == 0 and info.value.retryable


def test_stream_dropped_after_two_chunks(adapter, stub):
    provider, endpoint = adapter
    stub.script("up-model", BreakStream(2))
    received = []
    with pytest.raises(ProviderStreamBroken) as info:
        for chunk in provider.stream(endpoint, dict(BODY, stream=True), timeouts=FAST):
            received.append(chunk)
    assert len(received) == 2
    assert info.value.chunks_received == 2


def test_malformed_event_mid_stream_is_stream_broken(adapter, stub):
    provider, endpoint = adapter
    stub.script("up-model", BreakStream(1, malformed=True))
    received = []
    with pytest.raises(ProviderStreamBroken) as info:
        for chunk in provider.stream(endpoint, dict(BODY, stream=True), timeouts=FAST):
            received.append(chunk)
    assert len(received) == 1 and info.value.chunks_received == 1
    assert "malformed" in info.value.message


def test_closing_the_stream_early_disconnects_from_the_upstream(adapter, stub):
    provider, endpoint = adapter
    stub.script("up-model", Ok(content=" ".join(["word"] * 2000), chunk_delay=0.005))
    gen = provider.stream(endpoint, dict(BODY, stream=True), timeouts=FAST)
    assert next(gen)["choices"][0]["delta"]["role"] == "assistant"
    gen.close()
    [gone] = wait_for(lambda: stub.disconnects, timeout=5, message="the stub to see the client go")
    assert gone["model"] == "up-model" and gone["chunks_sent"] < 2000


# -- Mistral dialect -------------------------------------------------------------------


def test_mistral_translates_openai_parameters(stub):
    provider = MistralProvider()
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    body = {
        "model": "proxy-model",
        "messages": [
            {"role": "developer", "content": "be brief"},
            {"role": "user", "content": "hi", "name": "alice"},
            {
                "role": "assistant",
                "content": None,
                "refusal": None,
                "tool_calls": [
                    {"id": "call_abc123XYZ_long", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "call_abc123XYZ_long", "name": "f", "content": "42"},
            {"role": "user", "content": "and?"},
        ],
        "seed": 7,
        "max_completion_tokens": 50,
        "max_tokens": 10,
        "tool_choice": "required",
        "tools": tools,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": ["\n"],
        "n": 1,
        "response_format": {"type": "json_object"},
        "parallel_tool_calls": False,
        "logit_bias": {"50256": -100},
        "user": "u-1",
        "logprobs": True,
        "top_logprobs": 2,
        "stream_options": {"include_usage": True},
        "service_tier": "auto",
        "store": True,
        "metadata": {"a": "b"},
        "presence_penalty": None,
    }
    result = provider.complete(Endpoint(stub.mistral_url, KEY, "mistral-small-latest"), body, timeouts=FAST)
    assert result["choices"][0]["message"]["content"] == "echo: and?"
    sent = stub.requests[-1]["body"]
    assert sent["random_seed"] == 7 and "seed" not in sent
    assert sent["max_tokens"] == 50 and "max_completion_tokens" not in sent
    assert sent["tool_choice"] == "any"
    assert sent["model"] == "mistral-small-latest" and sent["stream"] is False
    for dropped in (
        "logit_bias",
        "user",
        "logprobs",
        "top_logprobs",
        "stream_options",
        "service_tier",
        "store",
        "metadata",
        "presence_penalty",
    ):
        assert dropped not in sent
    for kept in ("tools", "temperature", "top_p", "stop", "n", "response_format", "parallel_tool_calls"):
        assert sent[kept] == body[kept]
    messages = sent["messages"]
    assert messages[0] == {"role": "system", "content": "be brief"}
    assert messages[1] == {"role": "user", "content": "hi"}
    call_id = messages[2]["tool_calls"][0]["id"]
    assert len(call_id) == 9 and call_id.isalnum()
    assert messages[3] == {"role": "tool", "tool_call_id": call_id, "name": "f", "content": "42"}


def test_mistral_keeps_its_own_tool_call_ids(stub):
    body = {
        "model": "m",
        "messages": [
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"id": "D681PevKs", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
            },
            {"role": "tool", "tool_call_id": "D681PevKs", "content": "1"},
        ],
    }
    MistralProvider().complete(Endpoint(stub.mistral_url, KEY, "m"), body, timeouts=FAST)
    sent = stub.requests[-1]["body"]["messages"]
    assert sent[0]["tool_calls"][0]["id"] == "D681PevKs" and sent[1]["tool_call_id"] == "D681PevKs"


def test_mistral_responses_are_normalised(stub):
    provider = MistralProvider()
    endpoint = Endpoint(stub.mistral_url, KEY, "mistral-small-latest")
    stub.script(
        "mistral-small-latest",
        Ok(content="a b", finish_reason="model_length"),
        Ok(content="a b", finish_reason="model_length"),
    )
    result = provider.complete(endpoint, BODY, timeouts=FAST)
    choice = result["choices"][0]
    assert choice["finish_reason"] == "length" and "prefix" not in choice["message"]
    chunks = list(provider.stream(endpoint, dict(BODY, stream=True), timeouts=FAST))
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-2]["usage"] is None
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 2


def test_mistral_chunk_tool_calls_are_normalised():
    defaults = {"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    chunk = {
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "delta": {
                    "content": [{"type": "thinking", "thinking": []}, {"type": "text", "text": "ok"}],
                    "tool_calls": [{"id": "abcdefghi", "function": {"name": "f", "arguments": {"x": 1}}}],
                },
            }
        ]
    }
    [out] = MistralProvider().normalise_chunk(chunk, defaults)
    delta = out["choices"][0]["delta"]
    assert delta["content"] == "ok"
    assert delta["tool_calls"][0] == {
        "id": "abcdefghi",
        "type": "function",
        "index": 0,
        "function": {"name": "f", "arguments": '{"x": 1}'},
    }


def test_mistral_validation_error_is_a_bad_request_in_openai_shape(stub):
    # The OpenAI adapter sends `user`, which Mistral rejects with 422.
    with pytest.raises(ProviderBadRequest) as info:
        OpenAIProvider().complete(Endpoint(stub.mistral_url, KEY, "m"), dict(BODY, user="u"), timeouts=FAST)
    err = info.value
    assert err.status_code == 422
    assert "extra_forbidden" in err.upstream_body["error"]["message"]
    assert err.upstream_body["error"]["type"] == "invalid_request_error"


def test_mistral_context_length_message_is_context_too_long(stub):
    flat = {
        "object": "error",
        "message": "Prompt contains 40000 tokens and 0 draft tokens, too "
        "large for model with 32768 maximum context length",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    stub.script("m", Fail(400, body=flat))
    with pytest.raises(ProviderContextTooLong):
        MistralProvider().complete(Endpoint(stub.mistral_url, KEY, "m"), BODY, timeouts=FAST)


# -- helpers -------------------------------------------------------------------------


def test_error_from_response_without_json_body():
    err = error_from_response(502, {"Content-Type": "text/html"}, b"<html>Bad Gateway</html>", provider="openai")
    assert isinstance(err, ProviderUnavailable)
    assert err.upstream_body["error"]["message"] == "<html>Bad Gateway</html>"
    assert err.message == "openai: HTTP 502 bad gateway: <html>Bad Gateway</html>"
