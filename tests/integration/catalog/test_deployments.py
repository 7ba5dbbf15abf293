"""Admin API and CLI for a model's deployments: CRUD, the first deployment as the model's provider, keys never shown,
validation errors that name the field and store nothing, 404 across models and 409 for the last deployment."""

import json

import pytest
from sqlalchemy import select, text

from llmproxy.keys import crypto
from llmproxy.keys.credentials import deployment_context
from llmproxy.storage.models import Deployment
from tests.support.cli import cli
from tests.support.records import snapshot


def _deployments(client, admin_headers, model="gpt-4"):
    response = client.get(f"/admin/models/{model}/deployments", headers=admin_headers)
    assert response.status_code == 200, response.json
    return response.json["data"]


def test_an_existing_model_is_one_deployment_shown_as_its_provider(client, admin_headers):
    model = client.get("/admin/models/gpt-4", headers=admin_headers).json
    assert (model["provider"], model["upstream_model"]) == ("openai", "gpt-4")
    [only] = model["deployments"]
    assert only["provider"] == "openai" and only["upstream_model"] == "gpt-4" and only["weight"] == 1
    assert only["api_base"] is None and only["has_api_key"] is False and only["enabled"] is True
    assert _deployments(client, admin_headers) == [only]


def test_deployment_crud_and_the_key_is_never_returned(client, admin_headers, db, settings):
    added = client.post(
        "/admin/models/gpt-4/deployments",
        json={
            "provider": "mistral",
            "api_base": "http://127.0.0.1:9/v1/",
            "api_key": "sk-deployment-secret",
            "upstream_model": "mistral-large-latest",
            "weight": 3,
            "rpm_limit": 100,
            "tpm_limit": None,
        },
        headers=admin_headers,
    )
    assert added.status_code == 201, added.json
    body = added.json
    assert body["object"] == "deployment" and body["model"] == "gpt-4" and body["provider"] == "mistral"
    assert body["api_base"] == "http://127.0.0.1:9/v1" and body["weight"] == 3 and body["rpm_limit"] == 100
    assert body["has_api_key"] is True and "api_key" not in body and "sk-deployment-secret" not in json.dumps(body)
    with db() as s:
        sealed = s.scalar(select(Deployment.api_key_enc).where(Deployment.id == body["id"]))
    assert "sk-deployment" not in sealed
    assert crypto.decrypt(sealed, key=settings.encryption_key, context=deployment_context(body["id"])) == (
        "sk-deployment-secret"
    )

    listed = _deployments(client, admin_headers)
    assert [d["id"] for d in listed] == sorted(d["id"] for d in listed) and listed[1] == body
    model = client.get("/admin/models/gpt-4", headers=admin_headers).json
    assert model["provider"] == "openai" and len(model["deployments"]) == 2  # still the first one's

    patched = client.patch(
        f"/admin/models/gpt-4/deployments/{body['id']}",
        json={"weight": 5, "enabled": False, "api_key": None, "api_base": None},
        headers=admin_headers,
    )
    assert patched.status_code == 200, patched.json
    assert (patched.json["weight"], patched.json["enabled"]) == (5, False)
    assert patched.json["has_api_key"] is False and patched.json["api_base"] is None

    removed = client.delete(f"/admin/models/gpt-4/deployments/{body['id']}", headers=admin_headers)
    assert removed.status_code == 200 and removed.json == {"id": body["id"], "object": "deployment", "deleted": True}
    assert len(_deployments(client, admin_headers)) == 1


def test_model_provider_and_upstream_model_change_the_first_deployment(client, admin_headers):
    first = _deployments(client, admin_headers)[0]
    second = client.post(
        "/admin/models/gpt-4/deployments",
        json={"provider": "openai", "upstream_model": "gpt-4-b"},
        headers=admin_headers,
    ).json
    patched = client.patch(
        "/admin/models/gpt-4", json={"provider": "mistral", "upstream_model": "mistral-large"}, headers=admin_headers
    )
    assert patched.status_code == 200, patched.json
    assert (patched.json["provider"], patched.json["upstream_model"]) == ("mistral", "mistral-large")
    now = {d["id"]: d for d in patched.json["deployments"]}
    assert (now[first["id"]]["provider"], now[first["id"]]["upstream_model"]) == ("mistral", "mistral-large")
    assert (now[second["id"]]["provider"], now[second["id"]]["upstream_model"]) == ("openai", "gpt-4-b")

    created = client.post(
        "/admin/models",
        json={"name": "m-new", "provider": "mistral", "upstream_model": "up-new"},
        headers=admin_headers,
    )
    assert created.status_code == 201, created.json
    [dep] = created.json["deployments"]
    assert (dep["provider"], dep["upstream_model"], dep["weight"]) == ("mistral", "up-new", 1)


def test_a_provider_used_by_any_deployment_cannot_be_removed(client, admin_headers):
    client.post(
        "/admin/providers",
        json={"name": "local", "kind": "openai_compatible", "api_base": "http://127.0.0.1:9/v1"},
        headers=admin_headers,
    )
    added = client.post("/admin/models/gpt-4/deployments", json={"provider": "local"}, headers=admin_headers).json
    refused = client.delete("/admin/providers/local", headers=admin_headers)
    assert refused.status_code == 409 and "gpt-4" in refused.json["error"]["message"]
    client.delete(f"/admin/models/gpt-4/deployments/{added['id']}", headers=admin_headers)
    assert client.delete("/admin/providers/local", headers=admin_headers).status_code == 200


def test_removing_a_model_removes_its_deployments(client, admin_headers, db):
    client.post("/admin/models/mistral-medium/deployments", json={"provider": "openai"}, headers=admin_headers)
    assert client.delete("/admin/models/mistral-medium", headers=admin_headers).status_code == 200
    with db() as s:
        orphans = s.execute(
            text("SELECT COUNT(*) FROM deployments WHERE model_id NOT IN (SELECT id FROM models)")
        ).scalar()
    assert orphans == 0


def test_the_last_deployment_cannot_be_removed(client, admin_headers, db):
    [only] = _deployments(client, admin_headers)
    before = snapshot(db)
    refused = client.delete(f"/admin/models/gpt-4/deployments/{only['id']}", headers=admin_headers)
    assert refused.status_code == 409 and refused.json["error"]["code"] == "in_use"
    assert snapshot(db) == before


def test_unknown_model_or_another_models_deployment_is_404(client, admin_headers):
    [other] = _deployments(client, admin_headers, "mistral-tiny")
    for method, path in [
        ("get", "/admin/models/ghost/deployments"),
        ("post", "/admin/models/ghost/deployments"),
        ("patch", f"/admin/models/gpt-4/deployments/{other['id']}"),
        ("delete", f"/admin/models/gpt-4/deployments/{other['id']}"),
        ("patch", "/admin/models/gpt-4/deployments/999999"),
        ("delete", "/admin/models/gpt-4/deployments/not-a-number"),
    ]:
        response = getattr(client, method)(path, json={"provider": "openai", "weight": 2}, headers=admin_headers)
        assert response.status_code == 404, (method, path, response.json)
        assert set(response.json["error"]) == {"message", "type", "param", "code"}
    assert _deployments(client, admin_headers, "mistral-tiny") == [other]


@pytest.mark.parametrize(
    "body, param, code",
    [
        ({"provider": "nope"}, "provider", "provider_not_found"),
        ({"upstream_model": "x"}, "provider", "missing_field"),
        ({"provider": "openai", "weight": 0}, "weight", "invalid_request"),
        ({"provider": "openai", "weight": 1001}, "weight", "invalid_request"),
        ({"provider": "openai", "weight": "3"}, "weight", "invalid_request"),
        ({"provider": "openai", "weight": None}, "weight", "invalid_request"),
        ({"provider": "openai", "rpm_limit": 0}, "rpm_limit", "invalid_request"),
        ({"provider": "openai", "tpm_limit": -1}, "tpm_limit", "invalid_request"),
        ({"provider": "openai", "api_base": "ftp://x"}, "api_base", "invalid_request"),
        ({"provider": "openai", "api_key": 5}, "api_key", "invalid_request"),
        ({"provider": "openai", "enabled": "yes"}, "enabled", "invalid_request"),
        ({"provider": "openai", "colour": "red"}, "colour", "unknown_field"),
    ],
)
def test_bad_input_is_400_naming_the_field_and_stores_nothing(client, admin_headers, db, body, param, code):
    before = snapshot(db)
    created = client.post("/admin/models/gpt-4/deployments", json=body, headers=admin_headers)
    assert created.status_code == 400, created.json
    error = created.json["error"]
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", param, code)
    assert snapshot(db) == before
    if code != "missing_field":
        [first] = _deployments(client, admin_headers)
        changed = client.patch(f"/admin/models/gpt-4/deployments/{first['id']}", json=body, headers=admin_headers)
        assert changed.status_code == 400 and changed.json["error"]["param"] == param
        assert snapshot(db) == before


def test_cli_lists_adds_updates_and_removes_deployments(env, db):
    [first] = json.loads(cli(env, "deployments", "list", "gpt-4").stdout)
    assert first["provider"] == "openai"
    added = json.loads(
        cli(
            env,
            "deployments",
            "add",
            "gpt-4",
            "--provider",
            "mistral",
            "--upstream-model",
            "mistral-large",
            "--weight",
            "3",
            "--api-key-stdin",
            stdin="sk-cli-deployment\n",
        ).stdout
    )
    assert (added["provider"], added["weight"], added["has_api_key"]) == ("mistral", 3, True)
    assert "sk-cli-deployment" not in json.dumps(added)
    updated = json.loads(cli(env, "deployments", "update", "gpt-4", str(added["id"]), "--disabled").stdout)
    assert updated["enabled"] is False
    bad = cli(env, "deployments", "add", "gpt-4", "--provider", "nope", ok=False)
    assert bad.returncode == 1 and "nope" in bad.stderr
    last = cli(env, "deployments", "remove", "gpt-4", str(first["id"]))
    assert last.returncode == 0
    refused = cli(env, "deployments", "remove", "gpt-4", str(added["id"]), ok=False)
    assert refused.returncode == 1 and "last" in refused.stderr
    assert [d["id"] for d in json.loads(cli(env, "deployments", "list", "gpt-4").stdout)] == [added["id"]]
