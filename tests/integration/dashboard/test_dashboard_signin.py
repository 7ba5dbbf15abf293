"""The dashboard's sign-in, session cookie and CSRF protection, and its keys page, over the Flask test client (the
browser suite drives the same pages in Chromium)."""

from __future__ import annotations

import re

import pytest

from tests.support import records

ADMIN_KEY = "admin-test-key-0123456789"


def sign_in(client, key: str = ADMIN_KEY, **kwargs):
    return client.post("/dashboard/login", data={"admin_key": key}, **kwargs)


def token_of(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, "no CSRF token on the page"
    return found.group(1)


def session_cookie(response) -> str:
    [cookie] = [c for c in response.headers.getlist("Set-Cookie") if c.startswith("llmproxy_dashboard=")]
    return cookie


def test_pages_need_a_session_and_a_wrong_key_opens_none(client, db):
    r = client.get("/dashboard/keys")
    assert r.status_code == 302 and r.headers["Location"].startswith("/dashboard/login")
    wrong = sign_in(client, "sk-not-the-admin-key")
    assert wrong.status_code == 401 and "not the admin key" in wrong.get_data(as_text=True)
    assert not any(c.startswith("llmproxy_dashboard=") for c in wrong.headers.getlist("Set-Cookie"))
    assert client.get("/dashboard/keys").status_code == 302


@pytest.mark.parametrize("base_url, secure", [("http://localhost", False), ("https://localhost", True)])
def test_the_session_cookie_is_httponly_strict_and_secure_over_https(app, db, base_url, secure):
    client = app.test_client()
    r = sign_in(client, base_url=base_url)
    assert r.status_code == 302 and r.headers["Location"] == "/dashboard/overview"
    cookie = session_cookie(r)
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/dashboard" in cookie
    assert ("Secure" in cookie) is secure
    assert ADMIN_KEY not in cookie  # only a fingerprint of it
    page = client.get("/dashboard/keys", base_url=base_url)
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    assert page.headers["X-Frame-Options"] == "DENY"


def test_a_key_is_created_shown_once_edited_and_revoked(client, admin_headers, db):
    assert sign_in(client).status_code == 302
    token = token_of(client.get("/dashboard/keys").get_data(as_text=True))
    created = client.post(
        "/dashboard/keys",
        data={
            "csrf_token": token,
            "name": "team-a",
            "rpm_limit": "60",
            "tpm_limit": "",
            "budget_usd": "5",
            "models": "gpt-3.5-turbo, mistral-tiny",
        },
    )
    assert created.status_code == 200
    secret = re.search(r'id="secret" class="secret" readonly value="(sk-[^"]+)"', created.get_data(as_text=True))
    assert secret, created.get_data(as_text=True)
    [key] = client.get("/admin/keys", headers=admin_headers).json["data"]
    assert (key["name"], key["rpm_limit"], key["tpm_limit"], key["budget_usd"]) == ("team-a", 60, None, "5")
    assert key["models"] == ["gpt-3.5-turbo", "mistral-tiny"]
    listing = client.get("/dashboard/keys").get_data(as_text=True)
    assert secret.group(1) not in listing and key["prefix"] in listing  # never shown again
    assert client.get(f"/dashboard/keys?q={key['prefix']}").get_data(as_text=True).count("data-key-id=") == 1
    assert client.get("/dashboard/keys?q=nobody-has-this").get_data(as_text=True).count("data-key-id=") == 0

    edited = client.post(f"/dashboard/keys/{key['id']}", data={"csrf_token": token, "rpm_limit": "", "models": ""})
    assert edited.status_code == 302
    key = client.get(f"/admin/keys/{key['id']}", headers=admin_headers).json
    assert key["rpm_limit"] is None and key["models"] is None and key["name"] == "team-a"

    revoked = client.post(f"/dashboard/keys/{key['id']}/revoke", data={"csrf_token": token})
    assert revoked.status_code == 302
    assert client.get(f"/admin/keys/{key['id']}", headers=admin_headers).json["active"] is False


def test_bad_input_is_shown_on_the_page_and_changes_nothing(client, admin_headers, db):
    sign_in(client)
    token = token_of(client.get("/dashboard/keys").get_data(as_text=True))
    r = client.post("/dashboard/keys", data={"csrf_token": token, "name": "x", "rpm_limit": "lots"})
    assert r.status_code == 400 and "rpm_limit" in r.get_data(as_text=True)
    assert client.get("/admin/keys", headers=admin_headers).json["data"] == []


def test_forged_posts_change_nothing(client, admin_headers, make_key, db):
    _, key = make_key(name="victim")
    sign_in(client)
    for data in ({}, {"csrf_token": "forged"}):
        assert client.post("/dashboard/keys", data={**data, "name": "evil"}).status_code == 403
        assert client.post(f"/dashboard/keys/{key['id']}/revoke", data=data).status_code == 403
    names = [k["name"] for k in client.get("/admin/keys", headers=admin_headers).json["data"]]
    assert names == ["victim"]
    assert client.get(f"/admin/keys/{key['id']}", headers=admin_headers).json["active"] is True
    assert len(records.jobs(db)) == 0


def test_signing_out_ends_the_session_even_for_a_copied_cookie(app, db):
    client = app.test_client()
    cookie = session_cookie(sign_in(client)).split(";")[0].split("=", 1)[1]
    token = token_of(client.get("/dashboard/keys").get_data(as_text=True))
    assert client.post("/dashboard/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/dashboard/keys").status_code == 302
    thief = app.test_client()
    thief.set_cookie("llmproxy_dashboard", cookie, path="/dashboard")
    assert thief.get("/dashboard/keys").status_code == 302  # the copy died with the session
