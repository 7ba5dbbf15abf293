"""Streaming chat completions (SSE) through the real queue: format, fallback, breaks, cost, disconnects."""

from __future__ import annotations

import json
import re

import requests

from llmproxy.chat.tokens import count_text_tokens
from llmproxy.devtools.stub_responses import BreakStream, Fail, Ok
from llmproxy.devtools.waiting import wait_for
from tests.support import records

MESSAGES = [{"role": "user", "content": "Stream something"}]
GPT35 = ("1.5", "2")
EVENT = re.compile(r"data: [^\n]+")


def stream(client, secret, model="gpt-3.5-turbo", **fields):
    return client.post(
        "/v1/chat/completions",
        json={"model": model, "messages": MESSAGES, "stream": True, **fields},
        headers={"Authorization": f"Bearer {secret}"},
    )


def sse_events(text: str) -> list[str]:
    """The data payloads of an SSE body, checking the framing: every event is one `data: …` line."""
    assert text.endswith("\n\n"), text[-200:]
    blocks = text[:-2].split("\n\n")
    for block in blocks:
        assert EVENT.fullmatch(block), f"not a single data line: {block!r}"
    return [block[len("data: ") :] for block in blocks]


def chunks_of(events: list[str]) -> list[dict]:
    return [json.loads(e) for e in events if e != "[DONE]"]


def content_of(chunks: list[dict]) -> str:
    return "".join((c["choices"][0]["delta"].get("content") or "") for c in chunks if c["choices"])


def outcomes(job) -> list[tuple]:
    return [(a["provider"], a["model"], a["outcome"], a["status_code"]) for a in job.attempts]


def test_stream_is_openai_sse_ending_with_done_and_billed_once(client, make_key, upstream, worker, db):
    secret, key = make_key(name="sse")
    upstream.script("gpt-3.5-turbo", Ok(content="Hello streaming world", prompt_tokens=21, completion_tokens=3))

    r = stream(client, secret)

    assert r.status_code == 200
    assert r.mimetype == "text/event-stream"
    assert r.headers["x-request-id"].startswith("job_")
    assert (r.headers["x-llmproxy-provider"], r.headers["x-llmproxy-model"]) == ("openai", "gpt-3.5-turbo")
    events = sse_events(r.get_data(as_text=True))
    assert events[-1] == "[DONE]"
    assert events.count("[DONE]") == 1
    chunks = chunks_of(events)
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert all(c["model"] == "gpt-3.5-turbo" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert content_of(chunks) == "Hello streaming world"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    # Usage was not asked for: no chunk carries it (the proxy asked upstream for it, for billing).
    assert not any("usage" in c for c in chunks)
    assert upstream.chat_bodies()[0]["stream_options"] == {"include_usage": True}

    job = records.wait_for_job(db, r.headers["x-request-id"])
    assert job.status == "completed"
    assert outcomes(job) == [("openai", "gpt-3.5-turbo", "ok", 200)]
    assert job.result["choices"][0]["message"]["content"] == "Hello streaming world"
    (row,) = records.ledger(db)
    assert row.job_id == job.id
    assert (row.prompt_tokens, row.completion_tokens, row.tokens_estimated) == (21, 3, False)
    assert row.cost_usd == records.cost(21, 3, *GPT35) == job.cost_usd
    assert records.key_spend(db, key["id"]) == row.cost_usd


def test_usage_chunk_only_when_asked(client, make_key, upstream, worker, db):
    secret, _ = make_key(name="include-usage")
    upstream.script("gpt-3.5-turbo", Ok(content="one two", prompt_tokens=7, completion_tokens=2))

    r = stream(client, secret, stream_options={"include_usage": True})

    events = sse_events(r.get_data(as_text=True))
    assert events[-1] == "[DONE]"
    chunks = chunks_of(events)
    usage_chunks = [c for c in chunks if c.get("usage")]
    assert usage_chunks == [chunks[-1]]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}
    assert content_of(chunks) == "one two"


def test_stream_that_breaks_before_its_first_chunk_falls_back(client, make_key, upstream, worker, db):
    secret, _ = make_key(name="break-early")
    # Broken streams are retried like other transient failures: break every try of the first model.
    upstream.script("gpt-3.5-turbo", BreakStream(0), BreakStream(0), BreakStream(0))
    upstream.script("mistral-tiny", Ok(content="from the fallback"))

    r = stream(client, secret)

    # The headers left with the first chunk, which the fallback sent.
    assert (r.headers["x-llmproxy-provider"], r.headers["x-llmproxy-model"]) == ("mistral", "mistral-tiny")
    events = sse_events(r.get_data(as_text=True))
    assert events[-1] == "[DONE]"
    chunks = chunks_of(events)
    assert content_of(chunks) == "from the fallback"
    assert {c["model"] for c in chunks} == {"mistral-tiny"}
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    job = records.wait_for_job(db, r.headers["x-request-id"])
    assert job.status == "completed" and job.served_model == "mistral-tiny"
    assert outcomes(job) == [("openai", "gpt-3.5-turbo", "stream_broken", None)] * 3 + [
        ("mistral", "mistral-tiny", "ok", 200)
    ]
    assert len(records.ledger(db, job.id)) == 1


def test_stream_that_breaks_after_its_first_chunks_ends_with_an_error_event(client, make_key, upstream, worker, db):
    secret, key = make_key(name="break-late")
    upstream.script("gpt-3.5-turbo", BreakStream(2))

    r = stream(client, secret)

    assert r.status_code == 200  # the status line left with the first chunk
    events = sse_events(r.get_data(as_text=True))
    assert "[DONE]" not in events
    *chunks, last = [json.loads(e) for e in events]
    assert len(chunks) == 2
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert set(last) == {"error"}
    assert last["error"]["code"] == "stream_interrupted"
    assert last["error"]["type"] == "upstream_error"
    # Bytes had reached the caller: no retry, no fallback.
    assert [b["model"] for b in upstream.chat_bodies()] == ["gpt-3.5-turbo"]
    job = records.wait_for_job(db, r.headers["x-request-id"])
    assert job.status == "failed"
    assert outcomes(job) == [("openai", "gpt-3.5-turbo", "stream_broken", None)]
    # The two chunks the provider produced are billed once, at the model that sent them.
    (row,) = records.ledger(db, job.id)
    assert row.outcome == "failed" and row.model_served == "gpt-3.5-turbo" and row.completion_tokens > 0
    assert records.key_spend(db, key["id"]) == row.cost_usd == job.cost_usd


def test_stream_without_provider_usage_is_counted_with_tiktoken(client, make_key, upstream, worker, db):
    secret, key = make_key(name="stream-estimate")
    content = "Counting tokens ourselves since nobody else did"
    upstream.script("gpt-3.5-turbo", Ok(content=content, usage=False))

    r = stream(client, secret)

    events = sse_events(r.get_data(as_text=True))
    assert events[-1] == "[DONE]"
    assert content_of(chunks_of(events)) == content
    assert not any("usage" in c for c in chunks_of(events))  # not asked for
    job = records.wait_for_job(db, r.headers["x-request-id"])
    (row,) = records.ledger(db)
    assert row.job_id == job.id
    assert row.tokens_estimated is True
    assert row.completion_tokens == count_text_tokens(content, "gpt-3.5-turbo")
    assert row.prompt_tokens > 0
    assert row.cost_usd == records.cost(row.prompt_tokens, row.completion_tokens, *GPT35)
    assert records.key_spend(db, key["id"]) == row.cost_usd


def test_client_disconnect_stops_the_upstream_call_and_cancels_the_job(live, make_key, upstream, worker, db):
    secret, _ = make_key(name="disconnect")
    words = " ".join(f"word{i}" for i in range(60))
    upstream.script("gpt-3.5-turbo", Ok(content=words, chunk_delay=0.2))  # ~12 s if read to the end

    response = requests.post(
        live + "/v1/chat/completions",
        stream=True,
        timeout=30,
        json={"model": "gpt-3.5-turbo", "messages": MESSAGES, "stream": True},
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert response.status_code == 200
    job_id = response.headers["x-request-id"]
    first = next(line for line in response.iter_lines() if line)
    assert first.startswith(b"data: ")
    response.close()

    (gone,) = wait_for(lambda: upstream.disconnects, timeout=10, message="the upstream stream to be dropped")
    assert gone["model"] == "gpt-3.5-turbo"
    assert gone["chunks_sent"] < len(words.split())
    job = records.wait_for_job(db, job_id, timeout=10)
    assert job.status == "cancelled"
    assert job.attempts[-1]["outcome"] == "cancelled"
    # What the provider produced before the caller left is billed, once, from our own count.
    (row,) = records.ledger(db, job.id)
    assert row.outcome == "cancelled" and row.tokens_estimated and row.completion_tokens > 0
    assert row.cost_usd == records.cost(row.prompt_tokens, row.completion_tokens, *GPT35) == job.cost_usd


def test_stream_that_fails_before_any_chunk_gets_a_json_error_status(client, make_key, upstream, worker, db):
    # Nothing was sent yet, so the caller gets the error as OpenAI sends it: a status and a JSON body.
    secret, _ = make_key(name="stream-400")
    upstream_error = {
        "message": "Invalid 'logit_bias'",
        "type": "invalid_request_error",
        "param": "logit_bias",
        "code": "invalid_value",
    }
    upstream.script("gpt-3.5-turbo", Fail(400, body={"error": upstream_error}))

    r = stream(client, secret)

    assert r.status_code == 400
    assert r.mimetype == "application/json"
    assert r.json == {"error": upstream_error}
    job = records.recorded_job(db, r.headers["x-request-id"])
    assert job.status == "failed"


def test_usage_chunk_when_asked_and_the_provider_reported_none(client, make_key, upstream, worker, db):
    secret, _ = make_key(name="include-usage-estimated")
    upstream.script("gpt-3.5-turbo", Ok(content="no usage upstream", usage=False))

    r = stream(client, secret, stream_options={"include_usage": True})

    events = sse_events(r.get_data(as_text=True))
    assert events[-1] == "[DONE]"
    chunks = chunks_of(events)
    assert content_of(chunks) == "no usage upstream"
    job = records.wait_for_job(db, r.headers["x-request-id"])
    # The proxy's own count (the one it billed) stands in for the usage chunk the upstream did not send.
    assert [c for c in chunks if c.get("usage")] == [chunks[-1]]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == job.usage
    assert chunks[-1]["id"] == chunks[0]["id"]
    (row,) = records.ledger(db)
    assert row.tokens_estimated is True
    assert (row.prompt_tokens, row.completion_tokens) == (job.usage["prompt_tokens"], job.usage["completion_tokens"])


def test_stream_longer_than_the_sync_timeout_is_not_cut_while_chunks_flow(settings, make_key, upstream, worker, db):
    from web import create_app

    secret, _ = make_key(name="long-stream")
    words = " ".join(f"w{i}" for i in range(12))
    upstream.script("gpt-3.5-turbo", Ok(content=words, chunk_delay=0.2))  # ~2.6 s, never idle for 1.5 s
    client = create_app(settings.with_(sync_timeout_seconds=1.5)).test_client()

    r = stream(client, secret)

    events = sse_events(r.get_data(as_text=True))
    job = records.wait_for_job(db, r.headers["x-request-id"])
    assert job.status == "completed"
    assert events[-1] == "[DONE]"
    assert content_of(chunks_of(events)) == words
