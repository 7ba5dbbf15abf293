"""The database never holds a virtual key or a provider key in plain text; save-keys stays within its key."""

from sqlalchemy import text

from llmproxy.keys import crypto
from llmproxy.keys.credentials import credential_context, reencrypt_all
from llmproxy.storage.engine import session_scope


def raw_dump(session_factory) -> str:
    """Every row of every table, as text, read with plain SQL."""
    out = []
    with session_factory() as s:
        for table in ("api_keys", "providers", "key_credentials", "models", "deployments", "jobs", "usage_ledger"):
            out.extend(repr(tuple(row)) for row in s.execute(text(f"SELECT * FROM {table}")))
    return "\n".join(out)


def test_no_plaintext_secrets_in_rows(client, admin_headers, db):
    created = client.post("/admin/keys", json={"name": "n"}, headers=admin_headers).json
    secret = created["key"]
    client.patch("/admin/providers/openai", json={"api_key": "sk-provider-default-SECRET"}, headers=admin_headers)
    added = client.post(
        "/admin/models/gpt-4/deployments",
        json={"provider": "openai", "api_key": "sk-deployment-SECRET"},
        headers=admin_headers,
    )
    assert added.status_code == 201 and "SECRET" not in added.get_data(as_text=True)
    r = client.post(
        "/api/save-keys",
        json={"openaiKey": "sk-caller-openai-SECRET", "mistralKey": "mistral-SECRET", "anthropicKey": "ant-SECRET"},
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert r.status_code == 200
    assert "SECRET" not in r.get_data(as_text=True)
    dump = raw_dump(db)
    for plain in (
        secret,
        secret[10:],
        "sk-provider-default-SECRET",
        "sk-deployment-SECRET",
        "sk-caller-openai-SECRET",
        "mistral-SECRET",
        "ant-SECRET",
    ):
        assert plain not in dump
    assert created["prefix"] in dump  # the display prefix only
    for listing in ("/admin/providers", "/admin/keys", "/admin/models", "/admin/models/gpt-4/deployments"):
        assert "SECRET" not in client.get(listing, headers=admin_headers).get_data(as_text=True)


def test_save_keys_stores_encrypted_and_empty_string_removes(client, make_key, db, settings):
    secret, key = make_key()
    auth = {"Authorization": f"Bearer {secret}"}
    saved = client.post(
        "/api/save-keys", json={"openaiKey": "sk-a", "mistralKey": "m-b", "anthropicKey": "a-c"}, headers=auth
    )
    assert saved.json["saved_providers"] == ["anthropic", "mistral", "openai"]
    with db() as s:
        sealed = s.execute(
            text(
                "SELECT c.api_key_enc FROM key_credentials c JOIN providers p ON p.id = c.provider_id "
                "WHERE p.name = 'openai'"
            )
        ).scalar_one()
    assert (
        crypto.decrypt(sealed, key=settings.encryption_key, context=credential_context(key["id"], "openai")) == "sk-a"
    )
    assert client.post("/api/save-keys", json={"openaiKey": ""}, headers=auth).json["saved_providers"] == [
        "anthropic",
        "mistral",
    ]


def test_a_key_cannot_save_keys_for_another(client, make_key, db):
    mine, _ = make_key()
    theirs, their_key = make_key()
    before = raw_dump(db)
    r = client.post(
        "/api/save-keys",
        json={"virtualKey": theirs, "openaiKey": "sk-evil"},
        headers={"Authorization": f"Bearer {mine}"},
    )
    assert r.status_code == 403 and r.json["error"]["type"] == "permission_error"
    assert raw_dump(db) == before


def test_admin_saves_keys_for_a_named_key(client, make_key, admin_headers):
    secret, _ = make_key()
    r = client.post("/api/save-keys", json={"virtualKey": secret, "mistralKey": "m"}, headers=admin_headers)
    assert r.status_code == 200 and r.json["saved_providers"] == ["mistral"]
    missing = client.post("/api/save-keys", json={"mistralKey": "m"}, headers=admin_headers)
    assert missing.status_code == 400


def test_save_keys_without_auth_is_401(client, make_key):
    secret, _ = make_key()
    r = client.post("/api/save-keys", json={"virtualKey": secret, "openaiKey": "sk"})
    assert r.status_code == 401


def test_reencrypt_under_a_new_key(client, make_key, admin_headers, db, settings):
    import os

    secret, key = make_key()
    client.post("/api/save-keys", json={"openaiKey": "sk-a"}, headers={"Authorization": f"Bearer {secret}"})
    client.patch("/admin/providers/mistral", json={"api_key": "m-default"}, headers=admin_headers)
    added = client.post(
        "/admin/models/gpt-4/deployments", json={"provider": "openai", "api_key": "sk-eu"}, headers=admin_headers
    ).json
    new = os.urandom(32)
    with session_scope(db) as s:
        assert reencrypt_all(s, old_key=settings.encryption_key, new_key=new) == 3
    with db() as s:
        cred = s.execute(text("SELECT api_key_enc FROM key_credentials")).scalar_one()
        prov = s.execute(text("SELECT api_key_enc FROM providers WHERE name = 'mistral'")).scalar_one()
    assert crypto.decrypt(cred, key=new, context=credential_context(key["id"], "openai")) == "sk-a"
    assert crypto.decrypt(prov, key=new, context="provider:mistral") == "m-default"
    with db() as s:
        own = s.execute(text("SELECT api_key_enc FROM deployments WHERE id = :id"), {"id": added["id"]}).scalar_one()
    assert crypto.decrypt(own, key=new, context=f"deployment:{added['id']}") == "sk-eu"
    import pytest

    with pytest.raises(crypto.WrongKeyError):
        crypto.decrypt(prov, key=settings.encryption_key, context="provider:mistral")
