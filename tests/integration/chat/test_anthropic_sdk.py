"""A Claude model through the gateway with the official `openai` SDK: the stub speaks Anthropic's Messages API.

The default `anthropic` provider is pointed at the stub's `/anthropic` dialect by the `upstream` fixture;
the default Claude models carry Anthropic's list prices (cache reads and cache writes priced apart).
"""

from __future__ import annotations

import json
import time
from decimal import ROUND_HALF_EVEN, Decimal

import openai
import pytest

from llmproxy.devtools.stub_responses import BreakStream, Fail, Ok
from llmproxy.storage.money import MONEY_QUANTUM
from tests.support import records
from tests.support.chat_samples import PNG, TOOLS

CLAUDE = "claude-sonnet-4-5"


@pytest.fixture
def claude(live, make_key):
    """An SDK client with a fresh key; returns (client, key json)."""
    secret, key = make_key(name="claude")
    # max_retries=0: the SDK would retry 429 and 5xx itself and hide what the proxy answered.
    client = openai.OpenAI(base_url=live + "/v1", api_key=secret, max_retries=0, timeout=30)
    yield client, key
    client.close()


def messages_bodies(upstream) -> list[dict]:
    """The Messages API bodies the stub received, in order."""
    return [r["body"] for r in upstream.requests if r["path"] == "/anthropic/v1/messages"]


def outcomes(db, job_id: str) -> list[tuple]:
    job = records.recorded_job(db, job_id)
    return [(a["provider"], a["model"], a["outcome"], a["status_code"]) for a in job.attempts]


def exact(*terms: tuple[int, str]) -> Decimal:
    """Σ tokens × price per 1M, rounded once as the proxy must (computed apart from llmproxy.billing)."""
    total = sum((Decimal(tokens) * Decimal(price) for tokens, price in terms), Decimal(0)) / Decimal(1_000_000)
    return total.quantize(MONEY_QUANTUM, rounding=ROUND_HALF_EVEN)


def test_plain_completion(claude, upstream, worker, db, settings):
    client, key = claude
    upstream.script(CLAUDE, Ok(content="Hello from Claude", prompt_tokens=12, completion_tokens=4))

    raw = client.chat.completions.with_raw_response.create(model=CLAUDE, messages=[{"role": "user", "content": "Hi"}])
    completion = raw.parse()

    assert completion.object == "chat.completion" and completion.model == CLAUDE
    assert completion.choices[0].message.content == "Hello from Claude"
    assert completion.choices[0].finish_reason == "stop"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (12, 4)
    assert (raw.headers["x-llmproxy-provider"], raw.headers["x-llmproxy-model"]) == ("anthropic", CLAUDE)
    (sent,) = messages_bodies(upstream)
    # Anthropic requires max_tokens: the gateway's output cap for a request without one.
    assert sent["max_tokens"] == settings.default_max_tokens
    assert upstream.requests[-1]["headers"]["x-api-key"] == "sk-anthropic-default"
    expected = exact((12, "3"), (4, "15"))
    assert Decimal(raw.headers["x-llmproxy-cost-usd"]) == expected
    row = records.recorded_ledger(db, raw.headers["x-request-id"])
    assert (row.model_served, row.provider_served, row.cost_usd) == (CLAUDE, "anthropic", expected)
    assert records.key_spend(db, key["id"]) == expected


def test_multi_turn_with_a_system_prompt(claude, upstream, worker):
    client, _ = claude
    upstream.script(CLAUDE, Ok(content="Fine, thanks."))
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "How are you?"},
    ]
    completion = client.chat.completions.create(model=CLAUDE, messages=messages, max_tokens=64, stop=["\n\n"])

    assert completion.choices[0].message.content == "Fine, thanks."
    (sent,) = messages_bodies(upstream)
    assert sent["system"] == "You are terse."
    assert [(m["role"], m["content"][0]["text"]) for m in sent["messages"]] == [
        ("user", "Hi"),
        ("assistant", "Hello."),
        ("user", "How are you?"),
    ]
    assert (sent["max_tokens"], sent["stop_sequences"]) == (64, ["\n\n"])


def test_tools_then_a_tool_result(claude, upstream, worker):
    client, _ = claude
    upstream.script(
        CLAUDE,
        Ok(tool_calls=[{"name": "get_weather", "arguments": '{"city": "Paris"}'}]),
        Ok(content="It is 18C in Paris."),
    )
    messages: list = [{"role": "user", "content": "Weather in Paris?"}]

    first = client.chat.completions.create(model=CLAUDE, messages=messages, tools=TOOLS, tool_choice="required")
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}

    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "18C"},
    ]
    second = client.chat.completions.create(model=CLAUDE, messages=messages, tools=TOOLS)
    assert second.choices[0].message.content == "It is 18C in Paris."

    asked, answered = messages_bodies(upstream)
    assert asked["tool_choice"] == {"type": "any"}
    assert asked["tools"][0]["name"] == "get_weather" and "input_schema" in asked["tools"][0]
    assert answered["messages"][1]["content"] == [
        {"type": "tool_use", "id": call.id, "name": "get_weather", "input": {"city": "Paris"}}
    ]
    assert answered["messages"][2] == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "18C"}],
    }


def test_an_image(claude, upstream, worker):
    client, _ = claude
    upstream.script(CLAUDE, Ok(content="A single pixel."))
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
    ]
    completion = client.chat.completions.create(model=CLAUDE, messages=[{"role": "user", "content": content}])

    assert completion.choices[0].message.content == "A single pixel."
    (sent,) = messages_bodies(upstream)
    assert sent["messages"][0]["content"][1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": PNG},
    }


def test_streamed_text_with_usage(claude, upstream, worker, db):
    client, _ = claude
    upstream.script(CLAUDE, Ok(content="streamed from claude", prompt_tokens=9, completion_tokens=3))

    chunks = list(
        client.chat.completions.create(
            model=CLAUDE,
            messages=[{"role": "user", "content": "Hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )

    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "streamed from claude"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (9, 3)
    assert {c.model for c in chunks} == {CLAUDE}
    assert messages_bodies(upstream)[0]["stream"] is True


def test_streamed_tool_calls(claude, upstream, worker):
    client, _ = claude
    calls = [
        {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
    ]
    upstream.script(CLAUDE, Ok(tool_calls=calls))

    stream = client.chat.completions.create(
        model=CLAUDE, messages=[{"role": "user", "content": "Paris and Oslo?"}], tools=TOOLS, stream=True
    )
    assembled: dict[int, dict] = {}
    finish = None
    for chunk in stream:
        if not chunk.choices:
            continue
        finish = chunk.choices[0].finish_reason or finish
        for delta in chunk.choices[0].delta.tool_calls or []:
            call = assembled.setdefault(delta.index, {"id": None, "name": None, "arguments": ""})
            call["id"] = delta.id or call["id"]
            call["name"] = (delta.function.name if delta.function else None) or call["name"]
            call["arguments"] += (delta.function.arguments if delta.function else None) or ""

    assert finish == "tool_calls"
    assert sorted(assembled) == [0, 1]
    assert [(c["name"], json.loads(c["arguments"])) for c in assembled.values()] == [
        ("get_weather", {"city": "Paris"}),
        ("get_weather", {"city": "Oslo"}),
    ]
    assert all(c["id"] and c["id"].startswith("toolu_") for c in assembled.values())


def test_overloaded_529_is_retried_then_answered(claude, upstream, worker, db):
    client, _ = claude
    upstream.script(CLAUDE, Fail(529), Ok(content="after the overload"))

    raw = client.chat.completions.with_raw_response.create(model=CLAUDE, messages=[{"role": "user", "content": "Hi"}])

    assert raw.parse().choices[0].message.content == "after the overload"
    assert raw.headers["x-llmproxy-attempts"] == "2"
    assert outcomes(db, raw.headers["x-request-id"]) == [
        ("anthropic", CLAUDE, "unavailable", 529),
        ("anthropic", CLAUDE, "ok", 200),
    ]


def test_an_overloaded_error_event_before_any_content_is_retried(claude, upstream, worker, db):
    client, _ = claude
    upstream.script(CLAUDE, BreakStream(after_chunks=2, error_type="overloaded_error"), Ok(content="second try"))

    stream = client.chat.completions.with_raw_response.create(
        model=CLAUDE, messages=[{"role": "user", "content": "Hi"}], stream=True
    )
    chunks = list(stream.parse())

    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "second try"
    assert [o[2] for o in outcomes(db, stream.headers["x-request-id"])] == ["unavailable", "ok"]


def test_rate_limit_with_retry_after_is_waited_out(claude, upstream, worker, db):
    client, _ = claude
    upstream.script(CLAUDE, Fail(429, retry_after=1), Ok(content="after the wait"))

    started = time.monotonic()
    raw = client.chat.completions.with_raw_response.create(model=CLAUDE, messages=[{"role": "user", "content": "Hi"}])
    elapsed = time.monotonic() - started

    assert raw.parse().choices[0].message.content == "after the wait"
    # The backoff base is 0.01 s in the tests: only Anthropic's retry-after explains a second's wait.
    assert elapsed >= 1.0
    assert outcomes(db, raw.headers["x-request-id"]) == [
        ("anthropic", CLAUDE, "rate_limited", 429),
        ("anthropic", CLAUDE, "ok", 200),
    ]


@pytest.mark.parametrize("stream", [False, True])
def test_cache_reads_and_writes_are_priced_exactly_in_the_ledger(claude, upstream, worker, db, stream):
    client, key = claude
    upstream.script(
        CLAUDE,
        Ok(
            content="cached answer",
            prompt_tokens=100,
            completion_tokens=20,
            cache_read_tokens=1000,
            cache_write_tokens=500,
        ),
    )
    messages = [{"role": "user", "content": "Hi"}]
    if stream:
        raw = client.chat.completions.with_raw_response.create(
            model=CLAUDE, messages=messages, stream=True, stream_options={"include_usage": True}
        )
        usage = list(raw.parse())[-1].usage
    else:
        raw = client.chat.completions.with_raw_response.create(model=CLAUDE, messages=messages)
        usage = raw.parse().usage

    assert usage.prompt_tokens == 1600 and usage.completion_tokens == 20
    assert usage.prompt_tokens_details.cached_tokens == 1000
    assert usage.prompt_tokens_details.cache_write_tokens == 500  # a field the openai SDK knows
    # 100 fresh × $3 + 1000 cache reads × $0.30 + 500 cache writes × $3.75 + 20 output × $15, per 1M tokens
    expected = exact((100, "3"), (1000, "0.3"), (500, "3.75"), (20, "15"))
    assert expected == Decimal("0.002775")
    row = records.recorded_ledger(db, raw.headers["x-request-id"])
    assert (row.prompt_tokens, row.cached_prompt_tokens, row.cache_write_tokens, row.completion_tokens) == (
        1600,
        1000,
        500,
        20,
    )
    assert (row.input_cost_per_1m, row.cached_input_cost_per_1m, row.cache_write_cost_per_1m) == (
        Decimal("3"),
        Decimal("0.3"),
        Decimal("3.75"),
    )
    assert row.cost_usd == expected and not row.tokens_estimated
    assert records.key_spend(db, key["id"]) == expected


def test_an_openai_model_falls_back_to_a_claude_model(claude, client, admin_headers, upstream, worker, db):
    sdk, _ = claude
    r = client.patch("/admin/models/gpt-4", json={"fallbacks": ["claude-haiku-4-5"]}, headers=admin_headers)
    assert r.status_code == 200, r.json
    upstream.script("gpt-4", Fail(503), Fail(503), Fail(503))
    upstream.script("claude-haiku-4-5", Ok(content="Claude stepped in", prompt_tokens=10, completion_tokens=5))

    raw = sdk.chat.completions.with_raw_response.create(model="gpt-4", messages=[{"role": "user", "content": "Hi"}])

    completion = raw.parse()
    assert completion.model == "claude-haiku-4-5"
    assert completion.choices[0].message.content == "Claude stepped in"
    assert (raw.headers["x-llmproxy-provider"], raw.headers["x-llmproxy-attempts"]) == ("anthropic", "4")
    assert outcomes(db, raw.headers["x-request-id"])[-2:] == [
        ("openai", "gpt-4", "unavailable", 503),
        ("anthropic", "claude-haiku-4-5", "ok", 200),
    ]
    sent = upstream.requests[-1]
    assert sent["path"] == "/anthropic/v1/messages" and sent["body"]["model"] == "claude-haiku-4-5"
    row = records.recorded_ledger(db, raw.headers["x-request-id"])
    assert (row.model_requested, row.model_served) == ("gpt-4", "claude-haiku-4-5")
    assert row.cost_usd == exact((10, "1"), (5, "5"))


def test_a_claude_model_falls_back_to_an_openai_model(claude, client, admin_headers, upstream, worker, db):
    sdk, _ = claude
    r = client.patch("/admin/models/claude-haiku-4-5", json={"fallbacks": ["gpt-4"]}, headers=admin_headers)
    assert r.status_code == 200, r.json
    upstream.script("claude-haiku-4-5", Fail(529), Fail(529), Fail(529))
    upstream.script("gpt-4", Ok(content="GPT stepped in", prompt_tokens=10, completion_tokens=5))

    raw = sdk.chat.completions.with_raw_response.create(
        model="claude-haiku-4-5", messages=[{"role": "user", "content": "Hi"}]
    )

    completion = raw.parse()
    assert (completion.model, completion.choices[0].message.content) == ("gpt-4", "GPT stepped in")
    assert raw.headers["x-llmproxy-provider"] == "openai"
    assert outcomes(db, raw.headers["x-request-id"])[-1] == ("openai", "gpt-4", "ok", 200)
    assert {o[0] for o in outcomes(db, raw.headers["x-request-id"])[:-1]} == {"anthropic"}
    row = records.recorded_ledger(db, raw.headers["x-request-id"])
    assert (row.model_requested, row.model_served, row.provider_served) == ("claude-haiku-4-5", "gpt-4", "openai")


def test_an_error_event_after_content_ends_the_stream_with_an_error_and_bills_what_was_sent(
    claude, upstream, worker, db
):
    client, key = claude
    # message_start, ping, the text block's start and two deltas, then an api_error event.
    upstream.script(CLAUDE, BreakStream(after_chunks=5, error_type="api_error", content="one two three four"))

    raw = client.chat.completions.with_raw_response.create(
        model=CLAUDE, messages=[{"role": "user", "content": "Hi"}], stream=True
    )
    received = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in raw.parse():
            received.append(chunk)

    assert "".join(c.choices[0].delta.content or "" for c in received if c.choices) == "one two "
    assert caught.value.code == "stream_interrupted"
    job_id = raw.headers["x-request-id"]
    # Bytes had reached the caller: no retry, no fallback.
    assert outcomes(db, job_id) == [("anthropic", CLAUDE, "unavailable", 500)]
    assert len(messages_bodies(upstream)) == 1
    row = records.recorded_ledger(db, job_id)
    assert row.outcome == "failed" and row.completion_tokens > 0 and row.tokens_estimated
    assert records.key_spend(db, key["id"]) == row.cost_usd
