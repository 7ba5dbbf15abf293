"""Synchronous chat completions through the real queue: retries, fallbacks, upstream errors and cost.

Every request goes web (Flask test client) → Redis → the session's Celery worker → the stub
upstream → back over the job's Redis Stream; the assertions read the job row and the usage
ledger the worker wrote.
"""

from __future__ import annotations

import json
import os
from decimal import Decimal

import pytest

from llmproxy.catalog import provider_config
from llmproxy.chat.tokens import count_prompt_tokens, count_text_tokens
from llmproxy.devtools.stub_responses import Fail, Hang, Ok
from llmproxy.storage.engine import session_scope
from tests.support import records

MESSAGES = [{"role": "user", "content": "Say hello to the proxy"}]
# Prices per 1M tokens of the seeded models (llmproxy.catalog.DEFAULT_MODELS).
GPT35 = ("1.5", "2")
MISTRAL_TINY = ("0.15", "0.75")


def chat(client, secret, model="gpt-3.5-turbo", **fields):
    return client.post(
        "/v1/chat/completions",
        json={"model": model, "messages": MESSAGES, **fields},
        headers={"Authorization": f"Bearer {secret}"},
    )


def save_keys(client, secret, **keys):
    response = client.post("/api/save-keys", json=keys, headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 200, response.json


def outcomes(job) -> list[tuple]:
    return [(a["provider"], a["model"], a["outcome"], a["status_code"]) for a in job.attempts]


def assert_attempt_records(job) -> None:
    for attempt in job.attempts:
        assert {"provider", "model", "outcome", "status_code", "latency_ms"} <= set(attempt), attempt
        assert isinstance(attempt["latency_ms"], int) and attempt["latency_ms"] >= 0


def served_job(db, response):
    """The job behind a response, read from the database."""
    job = records.recorded_job(db, response.headers["x-request-id"])
    return job


def upstream_models(stub) -> list[str]:
    return [body["model"] for body in stub.chat_bodies()]


def test_completion_is_served_and_billed_from_the_providers_usage(client, make_key, upstream, worker, db):
    secret, key = make_key(name="plain")
    upstream.script("gpt-3.5-turbo", Ok(content="Hello there", prompt_tokens=1000, completion_tokens=500))

    r = chat(client, secret)

    assert r.status_code == 200, r.json
    body = r.json
    assert body["object"] == "chat.completion"
    assert body["model"] == "gpt-3.5-turbo"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "Hello there", "refusal": None}
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500}
    expected = records.cost(1000, 500, *GPT35)
    assert expected == Decimal("0.0025")
    assert r.headers["x-request-id"].startswith("job_")
    assert r.headers["x-llmproxy-provider"] == "openai"
    assert r.headers["x-llmproxy-model"] == "gpt-3.5-turbo"
    assert r.headers["x-llmproxy-attempts"] == "1"
    assert Decimal(r.headers["x-llmproxy-cost-usd"]) == expected

    # The provider's configured key was sent upstream, with the upstream model name.
    (request,) = upstream.requests
    assert request["headers"]["Authorization"] == "Bearer sk-openai-default"
    assert request["body"]["model"] == "gpt-3.5-turbo" and request["body"]["stream"] is False

    job = served_job(db, r)
    assert job.status == "completed"
    assert job.result["choices"][0]["message"]["content"] == "Hello there"
    assert outcomes(job) == [("openai", "gpt-3.5-turbo", "ok", 200)]
    assert_attempt_records(job)
    assert job.cost_usd == expected
    (row,) = records.ledger(db)
    assert (row.job_id, row.api_key_id) == (job.id, key["id"])
    assert (row.model_requested, row.model_served, row.provider_served) == ("gpt-3.5-turbo",) * 2 + ("openai",)
    assert (row.prompt_tokens, row.completion_tokens, row.tokens_estimated) == (1000, 500, False)
    assert (row.input_cost_per_1m, row.output_cost_per_1m) == (Decimal("1.5"), Decimal("2"))
    assert row.cost_usd == expected
    assert records.key_spend(db, key["id"]) == expected


def test_rate_limited_upstream_is_retried_then_served(client, make_key, upstream, worker, db):
    secret, _ = make_key(name="429")
    upstream.script("gpt-3.5-turbo", Fail(429, retry_after=1), Ok(content="after the wait"))

    r = chat(client, secret)

    assert r.status_code == 200, r.json
    assert r.json["choices"][0]["message"]["content"] == "after the wait"
    assert r.headers["x-llmproxy-attempts"] == "2"
    job = served_job(db, r)
    assert outcomes(job) == [("openai", "gpt-3.5-turbo", "rate_limited", 429), ("openai", "gpt-3.5-turbo", "ok", 200)]
    assert_attempt_records(job)
    assert upstream_models(upstream) == ["gpt-3.5-turbo", "gpt-3.5-turbo"]
    assert len(records.ledger(db, job.id)) == 1


def test_retry_after_beyond_the_cap_goes_to_the_fallback_at_once(client, make_key, upstream, worker, db):
    # RETRY_MAX_SECONDS is 2 in the tests: waiting 60 s is not worth it, the next model is tried.
    secret, _ = make_key(name="429-long")
    upstream.script("gpt-3.5-turbo", Fail(429, retry_after=60))

    r = chat(client, secret)

    assert r.status_code == 200, r.json
    assert r.json["model"] == "mistral-tiny"
    assert outcomes(served_job(db, r)) == [
        ("openai", "gpt-3.5-turbo", "rate_limited", 429),
        ("mistral", "mistral-tiny", "ok", 200),
    ]
    assert upstream_models(upstream) == ["gpt-3.5-turbo", "mistral-tiny"]


def test_server_errors_are_retried_then_served(client, make_key, upstream, worker, db):
    secret, _ = make_key(name="500")
    upstream.script("gpt-3.5-turbo", Fail(500), Fail(500), Ok(content="third time lucky"))

    r = chat(client, secret)

    assert r.status_code == 200, r.json
    assert r.json["model"] == "gpt-3.5-turbo"
    assert r.json["choices"][0]["message"]["content"] == "third time lucky"
    job = served_job(db, r)
    assert outcomes(job) == [("openai", "gpt-3.5-turbo", "unavailable", 500)] * 2 + [
        ("openai", "gpt-3.5-turbo", "ok", 200)
    ]
    assert_attempt_records(job)
    assert len(records.ledger(db, job.id)) == 1


def test_timeout_is_retried_then_the_exhausted_chain_is_a_502_listing_it(client, make_key, upstream, worker, db):
    # UPSTREAM_READ_TIMEOUT is 3 s in the tests; the first call says nothing for longer than that.
    secret, _ = make_key(name="timeout")
    upstream.script("gpt-3.5-turbo", Hang(3.5), Fail(503), Fail(503))
    upstream.script("mistral-tiny", Fail.context_length())

    r = chat(client, secret)

    assert r.status_code == 502, r.json
    error = r.json["error"]
    assert (error["type"], error["code"]) == ("upstream_error", "all_providers_failed")
    assert "openai/gpt-3.5-turbo: timeout" in error["message"]
    assert error["message"].count("openai/gpt-3.5-turbo: unavailable (503)") == 2
    assert "mistral/mistral-tiny: context_too_long (400)" in error["message"]
    job = served_job(db, r)
    assert job.status == "failed"
    assert outcomes(job) == [
        ("openai", "gpt-3.5-turbo", "timeout", None),
        ("openai", "gpt-3.5-turbo", "unavailable", 503),
        ("openai", "gpt-3.5-turbo", "unavailable", 503),
        ("mistral", "mistral-tiny", "context_too_long", 400),
    ]
    assert_attempt_records(job)
    assert records.ledger(db) == []


def test_answer_slower_than_the_web_redis_socket_timeout_is_delivered(client, make_key, upstream, worker, db):
    # Two read timeouts (3 s each) before the answer: the web waits over 5 s, redis-py 8's default
    # socket timeout, on the job's stream. That wait must not end as 503 "Redis is unavailable".
    secret, _ = make_key(name="slow")
    upstream.script("gpt-3.5-turbo", Hang(3.5), Hang(3.5), Ok(content="finally"))

    r = chat(client, secret)

    assert r.status_code == 200, r.json
    assert r.json["choices"][0]["message"]["content"] == "finally"
    assert outcomes(served_job(db, r)) == [("openai", "gpt-3.5-turbo", "timeout", None)] * 2 + [
        ("openai", "gpt-3.5-turbo", "ok", 200)
    ]


def test_saved_invalid_openai_key_is_served_by_the_mistral_fallback_at_mistrals_price(
    client, make_key, upstream, worker, db
):
    """The original proxy's scenario: the caller's own OpenAI key is wrong; Mistral answers instead."""
    secret, key = make_key(name="own-keys")
    save_keys(client, secret, openaiKey="bad-key-of-the-caller-0123")
    upstream.script("mistral-tiny", Ok(content="Bonjour", prompt_tokens=1234, completion_tokens=567))

    r = chat(client, secret, model="gpt-3.5-turbo")

    assert r.status_code == 200, r.json
    assert r.json["model"] == "mistral-tiny"
    assert r.json["choices"][0]["message"]["content"] == "Bonjour"
    assert r.json["usage"] == {"prompt_tokens": 1234, "completion_tokens": 567, "total_tokens": 1801}
    assert r.headers["x-llmproxy-provider"] == "mistral"
    assert r.headers["x-llmproxy-model"] == "mistral-tiny"
    assert r.headers["x-llmproxy-attempts"] == "2"

    # The caller's saved key went to OpenAI (and failed); Mistral got the provider's configured key.
    openai_call, mistral_call = upstream.requests
    assert openai_call["headers"]["Authorization"] == "Bearer bad-key-of-the-caller-0123"
    assert mistral_call["path"] == "/mistral/v1/chat/completions"
    assert mistral_call["headers"]["Authorization"] == "Bearer sk-mistral-default"

    job = served_job(db, r)
    assert outcomes(job) == [("openai", "gpt-3.5-turbo", "auth_failed", 401), ("mistral", "mistral-tiny", "ok", 200)]
    assert_attempt_records(job)
    # The stub echoes the rejected key in its 401 message; the proxy must not keep it.
    assert "bad-key-of-the-caller" not in json.dumps(job.attempts)

    expected = Decimal(1234) * Decimal("0.15") / Decimal(1_000_000) + Decimal(567) * Decimal("0.75") / Decimal(
        1_000_000
    )
    assert expected == Decimal("0.00061035")
    (row,) = records.ledger(db)
    assert (row.model_requested, row.model_served, row.provider_served) == ("gpt-3.5-turbo", "mistral-tiny", "mistral")
    assert (row.prompt_tokens, row.completion_tokens) == (1234, 567)
    assert (row.input_cost_per_1m, row.output_cost_per_1m) == (Decimal("0.15"), Decimal("0.75"))
    assert row.cost_usd == expected
    assert job.cost_usd == expected
    assert Decimal(r.headers["x-llmproxy-cost-usd"]) == expected
    assert records.key_spend(db, key["id"]) == expected


def test_model_with_no_credential_anywhere_is_skipped(client, make_key, upstream, worker, db, settings):
    if "OPENAI_API_KEY" in os.environ:
        pytest.skip("OPENAI_API_KEY is set in this environment; the worker would use it")
    with session_scope(db) as session:
        provider_config.update_provider(session, "openai", {"api_key": None}, encryption_key=settings.encryption_key)
    secret, _ = make_key(name="no-creds")

    r = chat(client, secret)

    assert r.status_code == 200, r.json
    assert r.json["model"] == "mistral-tiny"
    assert upstream_models(upstream) == ["mistral-tiny"]
    job = served_job(db, r)
    assert outcomes(job) == [
        ("openai", "gpt-3.5-turbo", "no_credentials", None),
        ("mistral", "mistral-tiny", "ok", 200),
    ]
    assert_attempt_records(job)


def test_upstream_bad_request_is_returned_as_is(client, make_key, upstream, worker, db):
    secret, key = make_key(name="400")
    upstream_error = {
        # A value in OpenAI's documented range (the gateway checks that) that this model still refuses.
        "message": "Unsupported value: 'temperature' does not support 1.5 with this model. Only the default (1) value is supported.",
        "type": "invalid_request_error",
        "param": "temperature",
        "code": "invalid_value",
    }
    upstream.script("gpt-3.5-turbo", Fail(400, body={"error": upstream_error}))

    r = chat(client, secret, temperature=1.5)

    assert r.status_code == 400
    assert r.json == {"error": upstream_error}
    # The caller's mistake is not retried and not sent to the fallback.
    assert upstream_models(upstream) == ["gpt-3.5-turbo"]
    job = served_job(db, r)
    assert job.status == "failed"
    assert outcomes(job) == [("openai", "gpt-3.5-turbo", "bad_request", 400)]
    assert records.ledger(db) == []
    assert records.key_spend(db, key["id"]) == Decimal(0)


def test_context_length_error_falls_back(client, make_key, upstream, worker, db):
    secret, _ = make_key(name="context")
    upstream.script("gpt-3.5-turbo", Fail.context_length())

    r = chat(client, secret)

    assert r.status_code == 200, r.json
    assert r.json["model"] == "mistral-tiny"
    assert outcomes(served_job(db, r)) == [
        ("openai", "gpt-3.5-turbo", "context_too_long", 400),
        ("mistral", "mistral-tiny", "ok", 200),
    ]
    assert upstream_models(upstream) == ["gpt-3.5-turbo", "mistral-tiny"]


def test_exhausted_chain_is_a_502_naming_every_attempt_and_no_secret(client, make_key, upstream, worker, db):
    secret, key = make_key(name="exhausted")
    save_keys(client, secret, openaiKey="bad-secret-openai-key-987")
    upstream.script("mistral-tiny", Fail(500), Fail(500), Fail(500))

    r = chat(client, secret)

    assert r.status_code == 502, r.json
    error = r.json["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["code"]) == ("upstream_error", "all_providers_failed")
    assert "openai/gpt-3.5-turbo: auth_failed (401)" in error["message"]
    assert error["message"].count("mistral/mistral-tiny: unavailable (500)") == 3
    assert r.headers["x-llmproxy-attempts"] == "4"
    for leaked in ("bad-secret-openai-key", "sk-mistral-default", "sk-openai-default", secret):
        assert leaked not in r.get_data(as_text=True)

    job = served_job(db, r)
    assert job.status == "failed"
    assert job.error == error
    assert (
        outcomes(job)
        == [("openai", "gpt-3.5-turbo", "auth_failed", 401)] + [("mistral", "mistral-tiny", "unavailable", 500)] * 3
    )
    assert_attempt_records(job)
    stored = json.dumps({"attempts": job.attempts, "error": job.error, "result": job.result})
    for leaked in ("bad-secret-openai-key", "sk-mistral-default", "sk-openai-default", secret):
        assert leaked not in stored
    assert records.ledger(db) == []
    assert records.key_spend(db, key["id"]) == Decimal(0)


def test_usage_is_counted_with_tiktoken_when_the_provider_reports_none(client, make_key, upstream, worker, db):
    secret, key = make_key(name="no-usage")
    content = "The quick brown fox jumps over the lazy dog"
    upstream.script("gpt-3.5-turbo", Ok(content=content, usage=False))

    r = chat(client, secret)

    assert r.status_code == 200, r.json
    prompt = count_prompt_tokens(MESSAGES, "gpt-3.5-turbo")
    completion = count_text_tokens(content, "gpt-3.5-turbo")
    assert prompt > 0 and completion > 0
    assert r.json["usage"] == {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    records.recorded_job(db, r.headers["x-request-id"])  # its ledger row is stored in the same transaction
    (row,) = records.ledger(db)
    assert (row.prompt_tokens, row.completion_tokens, row.tokens_estimated) == (prompt, completion, True)
    assert row.cost_usd == records.cost(prompt, completion, *GPT35)
    assert records.key_spend(db, key["id"]) == row.cost_usd


def test_cost_is_recorded_once_per_served_job(client, make_key, upstream, worker, db):
    secret, key = make_key(name="ledger")
    upstream.script(
        "gpt-3.5-turbo",
        Ok(prompt_tokens=10, completion_tokens=20),  # served at once
        Fail(502),
        Ok(prompt_tokens=30, completion_tokens=40),  # served on retry
        Fail.context_length(),  # served by fallback
        Fail(400),
    )  # failed: not billed
    upstream.script("mistral-tiny", Ok(prompt_tokens=50, completion_tokens=60))

    responses = [chat(client, secret) for _ in range(4)]

    assert [r.status_code for r in responses] == [200, 200, 200, 400]
    for r in responses:
        records.recorded_job(db, r.headers["x-request-id"])
    completed = [j for j in records.jobs(db) if j.status == "completed"]
    assert len(completed) == 3
    rows = records.ledger(db)
    assert sorted(row.job_id for row in rows) == sorted(j.id for j in completed)
    assert {row.job_id: row.cost_usd for row in rows} == {j.id: j.cost_usd for j in completed}
    assert sorted(row.cost_usd for row in rows) == sorted(
        [records.cost(10, 20, *GPT35), records.cost(30, 40, *GPT35), records.cost(50, 60, *MISTRAL_TINY)]
    )
    assert records.key_spend(db, key["id"]) == sum(row.cost_usd for row in rows)
