"""Every authentication case of API.md, on client and admin routes."""

import pytest

from llmproxy.devtools.waiting import wait_for

CLIENT_ROUTES = [
    ("get", "/v1/models"),
    ("get", "/models"),
    ("post", "/v1/chat/completions"),
    ("post", "/chat/completions"),
]


def _assert_error(response, status, type_, code):
    assert response.status_code == status, response.data
    error = response.json["error"]
    assert error["type"] == type_ and error["code"] == code
    assert set(error) == {"message", "type", "param", "code"}


@pytest.mark.parametrize("method, path", CLIENT_ROUTES)
@pytest.mark.parametrize("header", [None, "sk-nobearer", "Basic abc", "Bearer", "Bearer sk-unknown", "Bearer garbage"])
def test_client_routes_refuse_bad_credentials(client, method, path, header):
    headers = {"Authorization": header} if header is not None else {}
    response = getattr(client, method)(path, headers=headers, json={"model": "gpt-4", "messages": []})
    _assert_error(response, 401, "authentication_error", "invalid_api_key")


def test_revoked_key_is_refused(client, make_key, admin_headers):
    secret, key = make_key()
    assert client.get("/v1/models", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    assert client.delete(f"/admin/keys/{key['id']}", headers=admin_headers).status_code == 200
    _assert_error(
        client.get("/v1/models", headers={"Authorization": f"Bearer {secret}"}),
        401,
        "authentication_error",
        "invalid_api_key",
    )


def test_revocation_reaches_another_process_within_a_second(app, settings, make_key, admin_headers):
    """A second app (another process's view of the same database) refuses the key at once."""
    from web import create_app

    other = create_app(settings).test_client()
    secret, key = make_key()
    assert other.get("/v1/models", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    app.test_client().delete(f"/admin/keys/{key['id']}", headers=admin_headers)
    wait_for(
        lambda: other.get("/v1/models", headers={"Authorization": f"Bearer {secret}"}).status_code == 401,
        timeout=1.0,
        message="revocation to reach the other process",
    )


@pytest.mark.parametrize("path", ["/admin/keys", "/admin/providers", "/admin/models"])
def test_admin_routes(client, make_key, path):
    secret, _ = make_key()
    _assert_error(client.get(path), 401, "authentication_error", "invalid_api_key")
    _assert_error(
        client.get(path, headers={"Authorization": "Bearer wrong-admin-key-123"}),
        401,
        "authentication_error",
        "invalid_api_key",
    )
    _assert_error(
        client.get(path, headers={"Authorization": f"Bearer {secret}"}), 403, "permission_error", "admin_only"
    )


def test_generate_virtual_key_needs_admin(client, make_key, admin_headers):
    secret, _ = make_key()
    _assert_error(client.post("/api/generate-virtual-key"), 401, "authentication_error", "invalid_api_key")
    _assert_error(
        client.post("/api/generate-virtual-key", headers={"Authorization": f"Bearer {secret}"}),
        403,
        "permission_error",
        "admin_only",
    )
    created = client.post("/api/generate-virtual-key", headers=admin_headers)
    assert created.status_code == 201
    # No body stands for {}; a blank one is not JSON (found by the fuzz suite), and creates nothing.
    for route in ("/api/generate-virtual-key", "/admin/keys"):
        blank = client.post(route, data="\n\n", content_type="application/json", headers=admin_headers)
        _assert_error(blank, 400, "invalid_request_error", "invalid_json")
    assert len(client.get("/admin/keys", headers=admin_headers).json["data"]) == 2
    assert created.json["virtualKey"].startswith("sk-") and created.json["id"].startswith("key_")
    assert (
        client.get("/v1/models", headers={"Authorization": f"Bearer {created.json['virtualKey']}"}).status_code == 200
    )
