"""The official `openai` SDK pointed at the proxy (served over real HTTP) works unchanged.

Completions, streams, the model list, and every error status raising the SDK's matching exception.
"""

from __future__ import annotations

from decimal import Decimal

import openai
import pytest

from llmproxy.catalog import model_config
from llmproxy.devtools.stub_responses import Fail, Ok, Slow
from llmproxy.storage.engine import session_scope
from tests.support import records
from tests.support.processes import LiveServer

MESSAGES = [{"role": "user", "content": "Hello SDK"}]


def sdk(base_url: str, secret: str) -> openai.OpenAI:
    # max_retries=0: the SDK would retry 429 and 5xx itself and hide what the proxy answered.
    return openai.OpenAI(base_url=base_url + "/v1", api_key=secret, max_retries=0, timeout=30)


@pytest.fixture
def caller(live, make_key):
    """An SDK client with a fresh unrestricted key; returns (client, key json)."""
    secret, key = make_key(name="sdk")
    client = sdk(live, secret)
    yield client, key
    client.close()


def test_plain_completion(caller, upstream, worker, db):
    client, key = caller
    upstream.script("gpt-3.5-turbo", Ok(content="Hi from upstream", prompt_tokens=12, completion_tokens=4))

    raw = client.chat.completions.with_raw_response.create(model="gpt-3.5-turbo", messages=MESSAGES)
    completion = raw.parse()

    assert completion.object == "chat.completion"
    assert completion.model == "gpt-3.5-turbo"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content == "Hi from upstream"
    assert completion.choices[0].finish_reason == "stop"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens, completion.usage.total_tokens) == (
        12,
        4,
        16,
    )
    job_id = raw.headers["x-request-id"]
    assert job_id.startswith("job_")
    assert raw.headers["x-llmproxy-provider"] == "openai"
    assert raw.headers["x-llmproxy-model"] == "gpt-3.5-turbo"
    assert raw.headers["x-llmproxy-attempts"] == "1"
    expected = records.cost(12, 4, "1.5", "2")
    assert Decimal(raw.headers["x-llmproxy-cost-usd"]) == expected
    job = records.recorded_job(db, job_id)
    assert job.status == "completed" and job.cost_usd == expected


def test_streamed_completion_without_usage(caller, upstream, worker, db):
    client, _ = caller
    upstream.script("gpt-3.5-turbo", Ok(content="streamed through the sdk"))

    chunks = list(client.chat.completions.create(model="gpt-3.5-turbo", messages=MESSAGES, stream=True))

    assert chunks
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "streamed through the sdk"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks)
    assert {c.model for c in chunks} == {"gpt-3.5-turbo"}


def test_streamed_completion_with_usage(caller, upstream, worker, db):
    client, _ = caller
    upstream.script("gpt-3.5-turbo", Ok(content="with usage please", prompt_tokens=9, completion_tokens=3))

    chunks = list(
        client.chat.completions.create(
            model="gpt-3.5-turbo", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )

    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "with usage please"
    with_usage = [c for c in chunks if c.usage is not None]
    assert with_usage == [chunks[-1]]
    assert chunks[-1].choices == []
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens, chunks[-1].usage.total_tokens) == (
        9,
        3,
        12,
    )


def test_models_list(live, make_key, db):
    secret, _ = make_key(name="all-models")
    with sdk(live, secret) as client:
        models = list(client.models.list())
    with session_scope(db) as session:
        configured = {m.name: m.provider.name for m in model_config.list_models(session) if m.enabled}
    assert {"gpt-3.5-turbo", "mistral-tiny"} <= set(configured)
    assert {m.id: m.owned_by for m in models} == configured
    assert all(m.object == "model" for m in models)

    secret, _ = make_key(name="two-models", models=["gpt-4", "mistral-tiny"])
    with sdk(live, secret) as client:
        assert sorted(m.id for m in client.models.list()) == ["gpt-4", "mistral-tiny"]


def test_bad_key_is_authentication_error(live, db):
    with sdk(live, "sk-not-a-real-key") as client, pytest.raises(openai.AuthenticationError) as caught:
        client.chat.completions.create(model="gpt-3.5-turbo", messages=MESSAGES)
    assert caught.value.status_code == 401
    assert caught.value.code == "invalid_api_key"
    assert records.jobs(db) == []


def test_key_restricted_to_other_models_is_permission_denied(live, make_key, db):
    secret, _ = make_key(name="mistral-only", models=["mistral-tiny"])
    with sdk(live, secret) as client, pytest.raises(openai.PermissionDeniedError) as caught:
        client.chat.completions.create(model="gpt-3.5-turbo", messages=MESSAGES)
    assert caught.value.status_code == 403
    assert caught.value.code == "model_not_allowed"
    assert records.jobs(db) == []


def test_unknown_model_is_bad_request(caller, db):
    client, _ = caller
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="gpt-does-not-exist", messages=MESSAGES)
    assert caught.value.code == "model_not_found"
    assert caught.value.param == "model"
    assert records.jobs(db) == []


def test_upstream_bad_request_is_bad_request(caller, upstream, worker, db):
    client, _ = caller
    upstream.script(
        "gpt-3.5-turbo",
        Fail(
            400,
            body={
                "error": {
                    "message": "'messages' is too short",
                    "type": "invalid_request_error",
                    "param": "messages",
                    "code": "invalid_value",
                }
            },
        ),
    )
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="gpt-3.5-turbo", messages=MESSAGES)
    assert caught.value.status_code == 400
    assert caught.value.body["message"] == "'messages' is too short"
    assert (caught.value.code, caught.value.param) == ("invalid_value", "messages")


def test_unknown_route_is_not_found(caller):
    client, _ = caller
    with pytest.raises(openai.NotFoundError) as caught:
        client.get("/no-such-route", cast_to=object)
    assert caught.value.status_code == 404
    assert caught.value.code == "not_found"


def test_all_providers_failed_is_a_502_server_error(caller, upstream, worker, db):
    client, _ = caller
    upstream.script("gpt-3.5-turbo", Fail(503), Fail(503), Fail(503))
    upstream.script("mistral-tiny", Fail(500), Fail(500), Fail(500))
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="gpt-3.5-turbo", messages=MESSAGES)
    assert caught.value.status_code == 502
    assert (caught.value.type, caught.value.code) == ("upstream_error", "all_providers_failed")
    assert caught.value.response.headers["x-llmproxy-attempts"] == "6"


def test_sync_timeout_is_a_504_and_the_job_still_completes(settings, make_key, upstream, worker, db):
    from web import create_app

    secret, key = make_key(name="impatient")
    upstream.script("gpt-3.5-turbo", Slow(2, content="worth the wait"))
    app = create_app(settings.with_(sync_timeout_seconds=1))

    with LiveServer(app) as server, sdk(server.url, secret) as client:
        with pytest.raises(openai.InternalServerError) as caught:
            client.chat.completions.create(model="gpt-3.5-turbo", messages=MESSAGES)

    assert caught.value.status_code == 504
    assert (caught.value.type, caught.value.code) == ("timeout", "sync_timeout")
    job_id = caught.value.response.headers["x-request-id"]
    assert job_id in caught.value.message
    job = records.wait_for_job(db, job_id)
    assert job.status == "completed"
    assert job.result["choices"][0]["message"]["content"] == "worth the wait"
    (row,) = records.ledger(db, job_id)
    assert row.cost_usd == job.cost_usd
    assert records.key_spend(db, key["id"]) == row.cost_usd


def test_key_over_its_request_rate_is_rate_limit_error(live, make_key, upstream, worker, db):
    secret, _ = make_key(name="rpm-1", rpm_limit=1)
    with sdk(live, secret) as client:
        raw = client.chat.completions.with_raw_response.create(model="gpt-3.5-turbo", messages=MESSAGES)
        assert raw.parse().choices[0].message.content
        assert raw.headers["x-ratelimit-limit-requests"] == "1"
        assert raw.headers["x-ratelimit-remaining-requests"] == "0"
        with pytest.raises(openai.RateLimitError) as caught:
            client.chat.completions.create(model="gpt-3.5-turbo", messages=MESSAGES)
    assert caught.value.status_code == 429
    assert (caught.value.type, caught.value.code) == ("rate_limit_error", "rate_limit_exceeded")
    assert int(caught.value.response.headers["retry-after"]) >= 1
    # The refused request created no job and never reached the upstream.
    records.recorded_job(db, raw.headers["x-request-id"])
    assert len(records.jobs(db)) == 1
    assert len(upstream.chat_bodies()) == 1
