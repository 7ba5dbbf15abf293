"""Bad embedding requests get a 400 naming the param and change nothing; models have a mode the catalog keeps
consistent (no embedding model on a provider without embeddings, no chain mixing chat and embedding models)."""

from __future__ import annotations

import json

import pytest

from llmproxy.embeddings.validation import MAX_INPUTS
from tests.support import records
from tests.support.cli import cli

SMALL = "text-embedding-3-small"


def auth(secret: str) -> dict:
    return {"Authorization": f"Bearer {secret}"}


@pytest.mark.parametrize(
    "body, param, words",
    [
        ({"model": "gpt-3.5-turbo", "input": "x"}, "model", "is a chat model"),
        ({"model": "no-such-model", "input": "x"}, "model", "does not exist"),
        ({"input": "x"}, "model", "model parameter"),
        ({"model": SMALL}, "input", "Missing"),
        ({"model": SMALL, "input": ""}, "input", "empty"),
        ({"model": SMALL, "input": []}, "input", "non-empty"),
        ({"model": SMALL, "input": ["a", ""]}, "input[1]", "empty"),
        ({"model": SMALL, "input": ["a"] * (MAX_INPUTS + 1)}, "input", f"at most {MAX_INPUTS}"),
        ({"model": SMALL, "input": ["a", [1]]}, "input", "not both"),
        ({"model": SMALL, "input": [["a"]]}, "input[0]", "token ids"),
        ({"model": SMALL, "input": [-1]}, "input", "token ids"),
        ({"model": SMALL, "input": [[]]}, "input[0]", "token ids"),
        ({"model": SMALL, "input": {"text": "x"}}, "input", "non-empty"),
        ({"model": SMALL, "input": "x", "dimensions": 0}, "dimensions", "positive integer"),
        ({"model": SMALL, "input": "x", "dimensions": "8"}, "dimensions", "positive integer"),
        ({"model": SMALL, "input": "x", "encoding_format": "hex"}, "encoding_format", "base64"),
        ({"model": SMALL, "input": "x", "user": 5}, "user", "string"),
        ({"model": SMALL, "input": "x", "stream": True}, "stream", "stream"),
    ],
)
@pytest.mark.parametrize("prefer", [None, "respond-async"])
def test_bad_requests_are_400_naming_the_param_and_store_nothing(client, make_key, db, body, param, words, prefer):
    secret, _ = make_key()
    headers = auth(secret) | ({"Prefer": prefer} if prefer else {})
    r = client.post("/v1/embeddings", json=body, headers=headers)
    assert r.status_code == 400, r.json
    error = r.json["error"]
    assert error["param"] == param and words.lower() in error["message"].lower(), error
    assert error["type"] == "invalid_request_error"
    assert records.jobs(db) == [] and records.ledger(db) == []


def test_an_embedding_model_asked_for_a_chat_completion(client, make_key, db):
    secret, _ = make_key()
    r = client.post(
        "/v1/chat/completions",
        json={"model": SMALL, "messages": [{"role": "user", "content": "hi"}]},
        headers=auth(secret),
    )
    assert r.status_code == 400
    assert (r.json["error"]["code"], r.json["error"]["param"]) == ("model_not_found", "model")
    assert "is an embedding model: call /v1/embeddings" in r.json["error"]["message"]
    assert records.jobs(db) == []


def test_a_key_limited_to_other_models_is_403(client, make_key, db):
    secret, _ = make_key(models=["gpt-3.5-turbo"])
    r = client.post("/v1/embeddings", json={"model": SMALL, "input": "x"}, headers=auth(secret))
    assert r.status_code == 403 and r.json["error"]["code"] == "model_not_allowed"


def test_jobs_name_their_endpoint(client, make_key, db):
    secret, _ = make_key()
    bad = client.post("/v1/jobs", json={"endpoint": "/v1/images", "body": {"model": SMALL}}, headers=auth(secret))
    assert bad.status_code == 400 and bad.json["error"]["param"] == "endpoint"
    # A chat body sent as embeddings is checked as embeddings.
    chat = {"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "hi"}]}
    wrong = client.post("/v1/jobs", json={"endpoint": "/v1/embeddings", "body": chat}, headers=auth(secret))
    assert wrong.status_code == 400 and wrong.json["error"]["param"] == "input"
    assert records.jobs(db) == []


def test_the_same_idempotency_key_for_another_api_is_refused(client, make_key, db):
    secret, _ = make_key()
    headers = auth(secret) | {"Idempotency-Key": "one", "Prefer": "respond-async"}
    body = {"model": SMALL, "input": "x"}
    first = client.post("/v1/embeddings", json=body, headers=headers)
    assert first.status_code == 202 and first.json["endpoint"] == "/v1/embeddings"
    again = client.post("/v1/embeddings", json=body, headers=headers)
    assert again.status_code == 202 and again.json["id"] == first.json["id"]
    chat = {"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "x"}]}
    other = client.post("/v1/jobs", json={"body": chat}, headers=auth(secret) | {"Idempotency-Key": "one"})
    assert other.status_code == 422
    assert len(records.jobs(db)) == 1


@pytest.mark.parametrize(
    "fields, param, code",
    [
        ({"mode": "embedding", "provider": "anthropic"}, "mode", "invalid_request"),
        ({"mode": "image", "provider": "openai"}, "mode", "invalid_request"),
        ({"provider": "openai", "fallbacks": [SMALL]}, "fallbacks", "mode_mismatch"),
        ({"mode": "embedding", "provider": "openai", "fallbacks": ["gpt-4"]}, "fallbacks", "mode_mismatch"),
    ],
)
def test_models_keep_their_modes_consistent(client, admin_headers, db, fields, param, code):
    before = client.get("/admin/models", headers=admin_headers).json
    r = client.post("/admin/models", json={"name": "new-model", **fields}, headers=admin_headers)
    assert r.status_code == 400, r.json
    assert (r.json["error"]["param"], r.json["error"]["code"]) == (param, code)
    assert client.get("/admin/models", headers=admin_headers).json == before


def test_a_fallback_keeps_its_mode(client, admin_headers):
    r = client.post(
        "/admin/models",
        json={"name": "emb-a", "mode": "embedding", "provider": "openai", "fallbacks": [SMALL]},
        headers=admin_headers,
    )
    assert r.status_code == 201 and r.json["mode"] == "embedding"
    r = client.patch(f"/admin/models/{SMALL}", json={"mode": "chat"}, headers=admin_headers)
    assert r.status_code == 400 and (r.json["error"]["param"], r.json["error"]["code"]) == ("mode", "mode_mismatch")
    assert client.get(f"/admin/models/{SMALL}", headers=admin_headers).json["mode"] == "embedding"
    # A provider without embeddings cannot serve an existing embedding model either.
    r = client.patch(f"/admin/models/{SMALL}", json={"provider": "anthropic"}, headers=admin_headers)
    assert r.status_code == 400 and r.json["error"]["param"] == "provider"
    # Nor a second deployment of it.
    deployments = f"/admin/models/{SMALL}/deployments"
    r = client.post(deployments, json={"provider": "anthropic", "upstream_model": "x"}, headers=admin_headers)
    assert r.status_code == 400 and r.json["error"]["param"] == "provider"
    (only,) = client.get(deployments, headers=admin_headers).json["data"]
    r = client.patch(f"{deployments}/{only['id']}", json={"provider": "anthropic"}, headers=admin_headers)
    assert r.status_code == 400 and r.json["error"]["param"] == "provider"
    assert client.get(deployments, headers=admin_headers).json["data"] == [only]
    # Nor the provider itself turned into a kind without embeddings (it serves emb-a and text-embedding-3-*).
    before = client.get("/admin/providers/openai", headers=admin_headers).json
    r = client.patch("/admin/providers/openai", json={"kind": "anthropic"}, headers=admin_headers)
    assert r.status_code == 400, r.json
    assert (r.json["error"]["param"], r.json["error"]["code"]) == ("kind", "mode_mismatch")
    assert "the embedding model 'emb-a'" in r.json["error"]["message"]
    assert client.get("/admin/providers/openai", headers=admin_headers).json == before
    r = client.patch("/admin/providers/openai", json={"kind": "openai_compatible"}, headers=admin_headers)
    assert r.status_code == 200 and r.json["kind"] == "openai_compatible"  # a kind with embeddings is fine


def test_the_cli_adds_an_embedding_model(env, db):
    added = json.loads(
        cli(
            env,
            "models",
            "add",
            "emb-cli",
            "--mode",
            "embedding",
            "--provider",
            "mistral",
            "--upstream-model",
            "mistral-embed",
            "--input-per-1m",
            "0.1",
        ).stdout
    )
    assert (added["mode"], added["provider"], added["input_cost_per_1m"]) == ("embedding", "mistral", "0.1")
    refused = cli(env, "models", "add", "emb-bad", "--mode", "embedding", "--provider", "anthropic", ok=False)
    assert refused.returncode != 0 and "serves no embeddings" in refused.stderr + refused.stdout
