"""What an attacker or a careless client sends to any route: deep nesting, U+0000, NaN, numbers no column holds.
Every one is a 400 in OpenAI's shape (never a 500), and changes nothing."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import func, select

from llmproxy.json_input import MAX_DEPTH
from llmproxy.storage.engine import session_scope
from llmproxy.storage.models import ApiKey, Batch, Job, KeyCredential, ModelConfig, Provider

CHAT = {"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "hi"}]}

# Every route that reads a JSON body: (method, path, who calls it). `none`: the route parses before it authenticates.
JSON_ROUTES = [
    ("post", "/v1/chat/completions", "client"),
    ("post", "/chat/completions", "client"),
    ("post", "/v1/jobs", "client"),
    ("post", "/v1/batches", "client"),
    ("post", "/api/save-keys", "client"),
    ("post", "/api/save-keys", "none"),
    ("post", "/api/generate-virtual-key", "admin"),
    ("post", "/admin/keys", "admin"),
    ("patch", "/admin/keys/{key_id}", "admin"),
    ("post", "/admin/providers", "admin"),
    ("patch", "/admin/providers/openai", "admin"),
    ("post", "/admin/models", "admin"),
    ("patch", "/admin/models/gpt-4", "admin"),
]

HOSTILE_BODIES = [
    pytest.param(("[" * 5_000 + "]" * 5_000).encode(), None, id="5000-nested-arrays"),
    pytest.param(('{"a":' * (MAX_DEPTH + 1) + "1" + "}" * (MAX_DEPTH + 1)).encode(), None, id="65-nested-objects"),
    pytest.param(b"[" * 200_000, None, id="200000-unclosed"),
    pytest.param(b'{"model": "gpt-3.5-turbo\\u0000", "name": "n"}', "model", id="nul-in-a-value"),
    pytest.param(b'{"name": "n", "\\u0000": 1}', None, id="nul-in-a-key"),
    pytest.param(b'{"name": "\\ud800"}', "name", id="lone-surrogate"),
    pytest.param(b'{"name": "n", "rpm_limit": NaN}', None, id="nan"),
    pytest.param(b'{"name": "n", "rpm_limit": 1e999}', None, id="infinity"),
]


def row_counts(db) -> dict[str, int]:
    with session_scope(db) as session:
        return {
            model.__name__: session.scalar(select(func.count()).select_from(model))
            for model in (ApiKey, Provider, ModelConfig, KeyCredential, Job, Batch)
        }


@pytest.fixture
def callers(make_key, admin_headers):
    secret, key = make_key()
    return {"client": {"Authorization": f"Bearer {secret}"}, "admin": admin_headers, "none": {}}, key["id"]


@pytest.mark.parametrize("method, path, who", JSON_ROUTES)
@pytest.mark.parametrize("raw, param", HOSTILE_BODIES)
def test_hostile_json_is_400_invalid_json_on_every_route_and_changes_nothing(
    client, db, callers, method, path, who, raw, param
):
    headers, key_id = callers
    before = row_counts(db)
    r = getattr(client, method)(
        path.format(key_id=key_id), data=raw, content_type="application/json", headers=headers[who]
    )
    assert r.status_code == 400, r.get_data(as_text=True)
    assert r.json["error"]["type"] == "invalid_request_error" and r.json["error"]["code"] == "invalid_json"
    assert r.json["error"]["param"] == param
    assert row_counts(db) == before


# Ids, names and cursors from the URL reach database queries; PostgreSQL refuses NUL in text.
NUL_URLS = [
    ("get", "/v1/jobs/job_%00x", "client", None),
    ("post", "/v1/jobs/job_%00x/cancel", "client", None),
    ("get", "/v1/jobs?after=job_%00", "client", "after"),
    ("get", "/v1/jobs?batch_id=batch_%00", "client", "batch_id"),
    ("get", "/v1/batches/batch_%00", "client", None),
    ("get", "/v1/batches?after=batch_%00", "client", "after"),
    ("get", "/v1/files/file-%00", "client", None),
    ("get", "/v1/files?purpose=%00", "client", "purpose"),
    ("get", "/admin/keys/key_%00", "admin", None),
    ("delete", "/admin/keys/key_%00", "admin", None),
    ("get", "/admin/models/gpt-4%00", "admin", None),
    ("get", "/admin/providers/open%00ai", "admin", None),
    ("get", "/admin/usage?group_by=model&since=%00", "admin", "since"),
]


@pytest.mark.parametrize("method, url, who, param", NUL_URLS)
def test_nul_in_a_path_or_query_parameter_is_400(client, db, callers, method, url, who, param):
    headers, _ = callers
    before = row_counts(db)
    r = getattr(client, method)(url, headers=headers[who])
    assert r.status_code == 400, r.get_data(as_text=True)
    assert r.json["error"]["type"] == "invalid_request_error" and r.json["error"]["param"] == param
    assert row_counts(db) == before


def test_save_keys_refuses_nul_in_a_provider_key_and_saves_nothing(client, db, callers):
    headers, _ = callers
    r = client.post("/api/save-keys", json={"openaiKey": "sk-\u0000"}, headers=headers["client"])
    assert r.status_code == 400 and r.json["error"]["param"] == "openaiKey"
    assert row_counts(db)["KeyCredential"] == 0


@pytest.mark.parametrize(
    "path, fields, param",
    [
        ("/admin/keys", {"rpm_limit": 2**31}, "rpm_limit"),  # past PostgreSQL's INTEGER
        ("/admin/keys", {"tpm_limit": 2**64}, "tpm_limit"),  # past SQLite's too
        ("/admin/keys", {"budget_usd": "1000000.000001"}, "budget_usd"),  # past the documented bound
        ("/admin/keys", {"budget_usd": "1e16"}, "budget_usd"),  # past NUMERIC(28, 12) and SQLite's pico-dollars
        ("/admin/keys", {"budget_usd": 10**30}, "budget_usd"),
        ("/admin/models", {"name": "m", "provider": "openai", "input_cost_per_1m": "1e20"}, "input_cost_per_1m"),
        ("/admin/models", {"name": "m", "provider": "openai", "context_window": 2**63}, "context_window"),
    ],
)
def test_admin_numbers_no_column_holds_are_400(client, db, admin_headers, path, fields, param):
    before = row_counts(db)
    r = client.post(path, json=fields, headers=admin_headers)
    assert r.status_code == 400, r.get_data(as_text=True)
    assert r.json["error"]["param"] == param
    assert row_counts(db) == before


def test_the_largest_admin_numbers_are_stored(client, admin_headers):
    r = client.post("/admin/keys", json={"rpm_limit": 2**31 - 1, "budget_usd": "1000000"}, headers=admin_headers)
    assert r.status_code == 201, r.json
    assert r.json["rpm_limit"] == 2**31 - 1 and r.json["budget_usd"] == "1000000"


def test_nul_in_an_idempotency_key_is_400_and_stores_no_job(client, db, callers):
    headers, _ = callers
    r = client.post("/v1/jobs", json={"body": CHAT}, headers={**headers["client"], "Idempotency-Key": "k\x00"})
    assert r.status_code == 400 and r.json["error"]["code"] == "invalid_idempotency_key"
    assert row_counts(db)["Job"] == 0


def test_nul_in_an_uploaded_file_name_is_400_and_stores_no_file(client, callers):
    headers, _ = callers
    line = b'{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {}}\n'
    r = client.post(
        "/v1/files",
        headers=headers["client"],
        content_type="multipart/form-data",
        data={"purpose": "batch", "file": (io.BytesIO(line), "in\x00.jsonl")},
    )
    assert r.status_code == 400 and r.json["error"]["param"] == "file" and "NUL" in r.json["error"]["message"]
    assert client.get("/v1/files", headers=headers["client"]).json["data"] == []
