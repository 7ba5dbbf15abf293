"""A bad chat body on every route that takes one (sync, async, jobs, batch lines): a 400 naming the param, and
nothing stored, reserved, sent upstream or billed."""

from __future__ import annotations

import io
import json
import uuid

import pytest
from sqlalchemy import func, select

from llmproxy.storage.engine import session_scope
from llmproxy.storage.models import ApiKey, Job, UsageEntry
from tests.support.batching import wait_batch

# (fields over a valid body, the param the validator names, whether the JSON parser refuses it first)
BAD = [
    pytest.param({"n": 1_000_000_000_000}, "n", False, id="n-huge"),
    pytest.param({"messages": [{"role": "user"}]}, "messages[0].content", False, id="user-without-content"),
    pytest.param(
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": 7}}]}]},
        "messages[0].content[0].image_url.url",
        False,
        id="image-url",
    ),
    pytest.param(
        {"tools": [{"type": "function", "function": {"name": "has space"}}]},
        "tools[0].function.name",
        False,
        id="tool-name",
    ),
    pytest.param({"temperature": 3}, "temperature", False, id="temperature"),
    pytest.param({"stream_options": {"include_usage": True}}, "stream_options", False, id="stream-options"),
    pytest.param({"model": "gpt-3.5-turbo\u0000"}, "model", True, id="nul-in-model"),
]


def auth(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def chat_sync(client, secret, body):
    r = client.post("/v1/chat/completions", json=body, headers=auth(secret))
    return r.status_code, r.json["error"]


def chat_async(client, secret, body):
    r = client.post("/v1/chat/completions", json=body, headers={**auth(secret), "Prefer": "respond-async"})
    return r.status_code, r.json["error"]


def job(client, secret, body):
    r = client.post("/v1/jobs", json={"body": body}, headers=auth(secret))
    return r.status_code, r.json["error"]


def batch_line(client, secret, body):
    line = {"custom_id": "only", "method": "POST", "url": "/v1/chat/completions", "body": body}
    upload = client.post(
        "/v1/files",
        headers=auth(secret),
        content_type="multipart/form-data",
        data={"purpose": "batch", "file": (io.BytesIO(json.dumps(line).encode() + b"\n"), "in.jsonl")},
    )
    assert upload.status_code == 200, upload.json
    fields = {"input_file_id": upload.json["id"], "endpoint": "/v1/chat/completions", "completion_window": "24h"}
    created = client.post("/v1/batches", json=fields, headers=auth(secret)).json
    assert created["status"] == "validating", created  # a worker reads the lines, off the web thread
    batch = wait_batch(lambda i: client.get(f"/v1/batches/{i}", headers=auth(secret)).json, created["id"])
    assert batch["status"] == "failed", batch
    [error] = batch["errors"]["data"]
    return 400, error


ROUTES = [chat_sync, chat_async, job, batch_line]


def expected_param(route, param: str, by_parser: bool) -> str:
    """Where each route names the param: a batch line's and the parser's paths start at the line's/request's root."""
    if route is batch_line or (route is job and by_parser):
        return f"body.{param}"
    return param


def nothing_happened(db, rds, upstream, records, key_id: str, marker: str) -> None:
    records.drain()  # whatever had ended would be stored now
    with session_scope(db) as session:
        assert session.scalar(select(func.count()).select_from(Job).where(Job.api_key_id == key_id)) == 0
        assert session.scalar(select(func.count()).select_from(UsageEntry).where(UsageEntry.api_key_id == key_id)) == 0
        assert session.get(ApiKey, key_id).spend_usd == 0
    assert rds.keys(f"llmproxy:limits:{{{key_id}}}*") == []  # no reservation, no request counted
    assert not any(marker in json.dumps(body) for body in upstream.chat_bodies())


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.__name__)
@pytest.mark.parametrize("fields, param, by_parser", BAD)
def test_a_bad_body_is_400_naming_the_param_and_changes_nothing(
    client, make_key, db, rds, upstream, worker, records, route, fields, param, by_parser
):
    secret, key = make_key(rpm_limit=1000, tpm_limit=1_000_000, budget_usd="10")
    marker = f"request {uuid.uuid4()}"  # recognises this test's request upstream, whatever else runs
    body = {"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": marker}], **fields}
    status, error = route(client, secret, body)
    assert status == 400
    assert error["param"] == expected_param(route, param, by_parser), error
    if by_parser:
        assert error["code"] == ("invalid_json_line" if route is batch_line else "invalid_json")
    else:
        assert error["code"] in ("invalid_request", "missing_field")
    if route is not batch_line:
        assert error["type"] == "invalid_request_error"
    nothing_happened(db, rds, upstream, records, key["id"], marker)


def test_a_full_featured_valid_body_is_served(client, make_key, upstream, worker):
    """The rules refuse what OpenAI refuses, not what it takes: a body using most documented fields is served."""
    secret, _ = make_key()
    body = {
        "model": "gpt-3.5-turbo",
        "messages": [
            {"role": "developer", "content": [{"type": "text", "text": "be brief"}]},
            {"role": "user", "content": [{"type": "text", "text": "weather?"}], "name": "ann"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        ],
        "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}],
        "tool_choice": "auto",
        "n": 2,
        "temperature": 0.2,
        "top_p": 1,
        "stop": ["\n\n"],
        "seed": 7,
        "logit_bias": {"50256": -100},
        "user": "u-1",
        "metadata": {"team": "a"},
        "response_format": {"type": "text"},
        "a_field_openai_adds_tomorrow": {"x": 1},
    }
    r = client.post("/v1/chat/completions", json=body, headers=auth(secret))
    assert r.status_code == 200, r.json
    assert upstream.chat_bodies()[0]["a_field_openai_adds_tomorrow"] == {"x": 1}
