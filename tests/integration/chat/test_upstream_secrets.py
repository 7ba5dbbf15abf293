"""An upstream's error text never reaches a tenant: not in a synchronous error, a polled job or a batch's error file.

The stub upstream answers with error bodies that carry a key and an organisation id (as OpenAI's 401
and 429 messages do). Callers get our codes and fixed messages; the worker's log keeps the upstream
text, masked, under the job id.
"""

from __future__ import annotations

import io
import json

from llmproxy.devtools.stub_responses import Fail, openai_error
from llmproxy.devtools.waiting import wait_for
from tests.support import batching

KEY, ORG = "sk-live-SECRET123", "org-ABC"
LEAKY = f"Rate limit reached in organization {ORG} for key {KEY}"
MESSAGES = [{"role": "user", "content": "leak nothing"}]


def auth(secret):
    return {"Authorization": f"Bearer {secret}"}


def assert_no_secret(text: str) -> None:
    assert KEY not in text and "SECRET123" not in text
    assert ORG not in text


def fail_everything(upstream) -> None:
    """The first model: rate limited (retried), then 401; its fallback: three 500s. Every body is leaky."""
    upstream.script(
        "gpt-3.5-turbo",
        Fail(429, body=openai_error(LEAKY, "requests", "rate_limit_exceeded"), retry_after=0),
        Fail(401, body=openai_error(f"Incorrect API key provided: {KEY} ({ORG})", "invalid_request_error", None)),
    )
    upstream.script("mistral-tiny", *[Fail(500, body=openai_error(LEAKY, "server_error", None))] * 3)


def assert_attempts_are_ours(attempts: list[dict]) -> None:
    assert [(a["provider"], a["outcome"], a["status_code"]) for a in attempts] == [
        ("openai", "rate_limited", 429),
        ("openai", "auth_failed", 401),
        ("mistral", "unavailable", 500),
        ("mistral", "unavailable", 500),
        ("mistral", "unavailable", 500),
    ]
    assert attempts[1]["message"] == "The provider refused the credentials configured for it"
    assert all("Rate limit reached" not in a["message"] for a in attempts)


def test_sync_error_and_the_polled_job_carry_no_upstream_text(client, make_key, upstream, worker):
    secret, _ = make_key(name="leaks")
    fail_everything(upstream)

    r = client.post("/v1/chat/completions", json={"model": "gpt-3.5-turbo", "messages": MESSAGES}, headers=auth(secret))

    assert r.status_code == 502, r.json
    assert r.json["error"]["code"] == "all_providers_failed"
    assert_no_secret(r.get_data(as_text=True))
    job_id = r.headers["x-request-id"]
    polled = client.get(f"/v1/jobs/{job_id}", headers=auth(secret))
    assert polled.status_code == 200 and polled.json["status"] == "failed"
    assert_attempts_are_ours(polled.json["attempts"])
    assert_no_secret(polled.get_data(as_text=True))
    assert_no_secret(client.get("/v1/jobs", headers=auth(secret)).get_data(as_text=True))

    # The operator still has the upstream's words, masked, in the worker's log under the job id.
    lines = wait_for(
        lambda: [x for x in worker.output().splitlines() if job_id in x and "attempt failed" in x],
        timeout=10,
        message="the worker's log lines of the job",
    )
    assert len(lines) == 5
    assert any("Rate limit reached in organization org-***" in x for x in lines)
    assert_no_secret(worker.output())


def test_async_job_fails_without_upstream_text(client, make_key, upstream, worker):
    secret, _ = make_key(name="leaks-async")
    fail_everything(upstream)

    submitted = client.post(
        "/v1/jobs", json={"body": {"model": "gpt-3.5-turbo", "messages": MESSAGES}}, headers=auth(secret)
    )
    assert submitted.status_code == 202, submitted.json
    done = client.get(f"/v1/jobs/{submitted.json['id']}?wait=30", headers=auth(secret))

    assert done.json["status"] == "failed", done.json
    assert done.json["error"]["code"] == "all_providers_failed"
    assert_attempts_are_ours(done.json["attempts"])
    assert_no_secret(done.get_data(as_text=True))


def test_batch_error_file_carries_no_upstream_text(client, make_key, upstream, worker):
    secret, _ = make_key(name="leaks-batch")
    fail_everything(upstream)
    up = client.post(
        "/v1/files",
        headers=auth(secret),
        content_type="multipart/form-data",
        data={"purpose": "batch", "file": (io.BytesIO(batching.file_of(1)), "in.jsonl")},
    )
    assert up.status_code == 200, up.json
    created = client.post(
        "/v1/batches",
        headers=auth(secret),
        json={"input_file_id": up.json["id"], "endpoint": "/v1/chat/completions", "completion_window": "24h"},
    )
    assert created.status_code == 200, created.json

    batch = batching.wait_batch(
        lambda batch_id: client.get(f"/v1/batches/{batch_id}", headers=auth(secret)).json, created.json["id"]
    )

    assert batch["request_counts"] == {"total": 1, "completed": 0, "failed": 1}
    errors = client.get(f"/v1/files/{batch['error_file_id']}/content", headers=auth(secret))
    assert errors.status_code == 200
    (line,) = batching.parse(errors.data)
    assert line["response"]["status_code"] == 502
    assert line["response"]["body"]["error"]["code"] == "all_providers_failed"
    assert_no_secret(errors.get_data(as_text=True))
    lines = client.get(f"/v1/jobs?batch_id={batch['id']}", headers=auth(secret))
    assert_attempts_are_ours(lines.json["data"][0]["attempts"])
    assert_no_secret(lines.get_data(as_text=True))


def test_a_callers_own_bad_request_keeps_its_message_masked(client, make_key, upstream, worker):
    secret, _ = make_key(name="leaks-400")
    upstream_error = {
        "message": f"Invalid value for 'temperature' (organization {ORG}, key {KEY})",
        "type": "invalid_request_error",
        "param": "temperature",
        "code": "invalid_value",
    }
    upstream.script("gpt-3.5-turbo", Fail(400, body={"error": upstream_error}))

    r = client.post(
        "/v1/chat/completions",
        json={"model": "gpt-3.5-turbo", "messages": MESSAGES, "temperature": 1.5},
        headers=auth(secret),
    )

    assert r.status_code == 400
    assert r.json == {
        "error": {
            "message": "Invalid value for 'temperature' (organization org-***, key sk-***)",
            "type": "invalid_request_error",
            "param": "temperature",
            "code": "invalid_value",
        }
    }
    polled = client.get(f"/v1/jobs/{r.headers['x-request-id']}", headers=auth(secret))
    assert_no_secret(json.dumps(polled.json))
