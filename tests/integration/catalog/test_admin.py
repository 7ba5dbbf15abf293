"""Admin API: keys, providers, models; validation errors are 400 in OpenAI's shape and change nothing."""

from decimal import Decimal

import pytest
from sqlalchemy import select

from llmproxy.storage.models import ModelConfig
from tests.support.records import snapshot


def test_key_lifecycle(client, admin_headers):
    created = client.post(
        "/admin/keys",
        json={"name": "team-a", "rpm_limit": 60, "tpm_limit": 1000, "budget_usd": "10.50", "models": ["gpt-4"]},
        headers=admin_headers,
    )
    assert created.status_code == 201
    body = created.json
    assert body["key"].startswith("sk-") and len(body["key"]) >= 3 + 43  # 256 bits, base64url
    assert body["prefix"] == body["key"][:10]
    assert body["budget_usd"] == "10.5" and body["spend_usd"] == "0" and body["models"] == ["gpt-4"]
    listed = client.get("/admin/keys", headers=admin_headers).json["data"]
    assert [k["id"] for k in listed] == [body["id"]]
    assert "key" not in listed[0]
    patched = client.patch(f"/admin/keys/{body['id']}", json={"rpm_limit": 5, "models": None}, headers=admin_headers)
    assert patched.json["rpm_limit"] == 5 and patched.json["models"] is None
    revoked = client.delete(f"/admin/keys/{body['id']}", headers=admin_headers)
    assert revoked.json["active"] is False
    assert client.get("/admin/keys/key_missing", headers=admin_headers).status_code == 404


def test_key_models_restrict_model_list(client, make_key):
    secret, _ = make_key(models=["mistral-tiny"])
    listed = client.get("/v1/models", headers={"Authorization": f"Bearer {secret}"}).json
    assert listed["object"] == "list"
    assert [m["id"] for m in listed["data"]] == ["mistral-tiny"]
    assert listed["data"][0]["object"] == "model" and listed["data"][0]["owned_by"] == "mistral"


def test_defaults_are_seeded_with_prices_per_million(client, admin_headers):
    models = {m["name"]: m for m in client.get("/admin/models", headers=admin_headers).json["data"]}
    assert set(models) == {
        "gpt-3.5-turbo",
        "gpt-4",
        "mistral-tiny",
        "mistral-small",
        "mistral-medium",
        "mistral-large",
        "claude-sonnet-4-5",
        "claude-haiku-4-5",
        "text-embedding-3-small",
        "text-embedding-3-large",
        "mistral-embed",
    }
    assert {name for name, m in models.items() if m["mode"] == "embedding"} == {
        "text-embedding-3-small",
        "text-embedding-3-large",
        "mistral-embed",
    }
    assert (models["text-embedding-3-small"]["provider"], models["text-embedding-3-small"]["input_cost_per_1m"]) == (
        "openai",
        "0.02",
    )
    assert models["gpt-3.5-turbo"]["fallbacks"] == ["mistral-tiny"]
    assert models["gpt-4"]["fallbacks"] == ["mistral-large"]
    assert (models["gpt-3.5-turbo"]["input_cost_per_1m"], models["gpt-3.5-turbo"]["output_cost_per_1m"]) == ("1.5", "2")
    assert (models["mistral-tiny"]["input_cost_per_1m"], models["mistral-tiny"]["output_cost_per_1m"]) == (
        "0.15",
        "0.75",
    )
    claude = models["claude-sonnet-4-5"]
    assert (claude["provider"], claude["input_cost_per_1m"], claude["output_cost_per_1m"]) == ("anthropic", "3", "15")
    assert (claude["cached_input_cost_per_1m"], claude["cache_write_cost_per_1m"]) == ("0.3", "3.75")
    assert models["gpt-4"]["cache_write_cost_per_1m"] is None
    providers = {p["name"]: p for p in client.get("/admin/providers", headers=admin_headers).json["data"]}
    assert providers["openai"]["api_base"] == "https://api.openai.com/v1"
    assert providers["mistral"]["api_base"] == "https://api.mistral.ai/v1"


def test_seeding_is_idempotent(db):
    from llmproxy.catalog import defaults
    from llmproxy.storage.engine import session_scope

    with session_scope(db) as session:
        assert defaults.seed_defaults(session) == 0


def test_provider_and_model_crud(client, admin_headers):
    p = client.post(
        "/admin/providers",
        json={
            "name": "local",
            "kind": "openai_compatible",
            "api_base": "http://127.0.0.1:9/v1/",
            "api_key": "sk-local",
        },
        headers=admin_headers,
    )
    assert p.status_code == 201 and p.json["has_api_key"] is True and "api_key" not in p.json
    assert p.json["api_base"] == "http://127.0.0.1:9/v1"
    m = client.post(
        "/admin/models",
        json={
            "name": "llama",
            "provider": "local",
            "upstream_model": "llama3:8b",
            "fallbacks": ["mistral-tiny"],
            "input_cost_per_1m": "0.1",
            "output_cost_per_1m": 0.2,
            "context_window": 8192,
        },
        headers=admin_headers,
    )
    assert m.status_code == 201, m.json
    assert m.json["output_cost_per_1m"] == "0.2"
    e = client.patch("/admin/models/llama", json={"input_cost_per_1m": "0.000001"}, headers=admin_headers)
    assert e.json["input_cost_per_1m"] == "0.000001"
    assert client.delete("/admin/providers/local", headers=admin_headers).status_code == 409
    assert client.delete("/admin/models/llama", headers=admin_headers).status_code == 200
    assert client.delete("/admin/providers/local", headers=admin_headers).status_code == 200
    assert client.get("/admin/providers/local", headers=admin_headers).status_code == 404


def test_money_is_exact(client, admin_headers, db):
    client.patch("/admin/models/gpt-4", json={"input_cost_per_1m": "0.123456789012"}, headers=admin_headers)
    with db() as s:
        price = s.scalar(select(ModelConfig.input_cost_per_1m).where(ModelConfig.name == "gpt-4"))
    assert price == Decimal("0.123456789012")


@pytest.mark.parametrize(
    "method, path, body, code",
    [
        ("post", "/admin/models", {"name": "m1", "provider": "nope"}, "provider_not_found"),
        ("post", "/admin/models", {"name": "m1", "provider": "openai", "input_cost_per_1m": -1}, "invalid_request"),
        ("post", "/admin/models", {"name": "m1", "provider": "openai", "output_cost_per_1m": "abc"}, "invalid_request"),
        ("post", "/admin/models", {"name": "m1", "provider": "openai", "fallbacks": ["m1"]}, "fallback_loop"),
        ("post", "/admin/models", {"name": "m1", "provider": "openai", "fallbacks": ["ghost"]}, "model_not_found"),
        ("post", "/admin/models", {"provider": "openai"}, "missing_field"),
        ("post", "/admin/models", {"name": "gpt-4", "provider": "openai"}, "already_exists"),
        ("post", "/admin/models", {"name": "m1", "provider": "openai", "colour": "red"}, "unknown_field"),
        ("patch", "/admin/models/mistral-tiny", {"fallbacks": ["gpt-3.5-turbo"]}, "fallback_loop"),
        ("patch", "/admin/models/gpt-4", {"input_cost_per_1m": "5", "output_cost_per_1m": -0.5}, "invalid_request"),
        ("patch", "/admin/models/gpt-4", {"provider": "nope", "input_cost_per_1m": "1"}, "provider_not_found"),
        ("post", "/admin/providers", {"name": "x", "kind": "bogus", "api_base": "http://x"}, "invalid_request"),
        ("post", "/admin/providers", {"name": "x", "kind": "openai", "api_base": "ftp://x"}, "invalid_request"),
        ("post", "/admin/providers", {"name": "openai", "kind": "openai", "api_base": "http://x"}, "already_exists"),
        ("post", "/admin/keys", {"rpm_limit": -5}, "invalid_request"),
        ("post", "/admin/keys", {"budget_usd": "-1"}, "invalid_request"),
        ("post", "/admin/keys", {"models": ["ghost"]}, "model_not_found"),
    ],
)
def test_validation_errors_are_400_and_change_nothing(client, admin_headers, db, method, path, body, code):
    before = snapshot(db)
    response = getattr(client, method)(path, json=body, headers=admin_headers)
    assert response.status_code == 400, response.json
    assert response.json["error"]["type"] == "invalid_request_error"
    assert response.json["error"]["code"] == code
    assert snapshot(db) == before


def test_http_errors_use_openai_body(client, admin_headers, app):
    for response, status in [
        (client.get("/no/such/route"), 404),
        (client.put("/admin/keys", headers=admin_headers), 405),
        (
            client.post("/admin/keys", data="{not json", headers={**admin_headers, "Content-Type": "application/json"}),
            400,
        ),
        (client.post("/admin/keys", data="[1,2]", headers=admin_headers), 400),
    ]:
        assert response.status_code == status
        assert set(response.json["error"]) == {"message", "type", "param", "code"}
    app.config["MAX_CONTENT_LENGTH"] = 1000
    big = client.post("/admin/keys", data="{" + " " * 5000 + "}", headers=admin_headers)
    assert big.status_code == 413 and big.json["error"]["code"] == "request_too_large"


def test_malformed_json_on_completions(client, make_key):
    secret, _ = make_key()
    r = client.post("/v1/chat/completions", data="{oops", headers={"Authorization": f"Bearer {secret}"})
    assert r.status_code == 400 and r.json["error"]["code"] == "invalid_json"


def test_cache_write_price_is_set_shown_and_cleared(client, admin_headers):
    r = client.patch("/admin/models/gpt-4", json={"cache_write_cost_per_1m": "37.5"}, headers=admin_headers)
    assert r.status_code == 200, r.json
    assert r.json["cache_write_cost_per_1m"] == "37.5"
    assert client.get("/admin/models/gpt-4", headers=admin_headers).json["cache_write_cost_per_1m"] == "37.5"
    bad = client.patch("/admin/models/gpt-4", json={"cache_write_cost_per_1m": "-1"}, headers=admin_headers)
    assert bad.status_code == 400 and bad.json["error"]["param"] == "cache_write_cost_per_1m"
    cleared = client.patch("/admin/models/gpt-4", json={"cache_write_cost_per_1m": None}, headers=admin_headers)
    assert cleared.json["cache_write_cost_per_1m"] is None
