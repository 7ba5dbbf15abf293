"""Files of the Batch API: upload, read, list, download, delete; limits; isolation between keys."""

import io
import json

import pytest

from tests.support import batching

LINE = {
    "custom_id": "a",
    "method": "POST",
    "url": "/v1/chat/completions",
    "body": {"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "hi"}]},
}


def auth(secret):
    return {"Authorization": f"Bearer {secret}"}


def jsonl(n: int, pad: int = 0) -> bytes:
    lines = [dict(LINE, custom_id=f"line-{i}", pad="x" * pad) for i in range(n)]
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


upload = batching.upload_file


def test_upload_read_list_download_delete(client, make_key):
    secret, _ = make_key()
    content = jsonl(3)
    r = upload(client, secret, content)
    assert r.status_code == 200, r.json
    f = r.json
    assert f["id"].startswith("file-") and f["object"] == "file"
    assert (f["bytes"], f["filename"], f["purpose"], f["status"]) == (len(content), "in.jsonl", "batch", "processed")
    assert f["created_at"] > 0 and f["expires_at"] > f["created_at"]
    assert client.get(f"/v1/files/{f['id']}", headers=auth(secret)).json == f
    body = client.get(f"/v1/files/{f['id']}/content", headers=auth(secret))
    assert body.status_code == 200 and body.data == content
    second = upload(client, secret, jsonl(1), name="two.jsonl").json
    listed = client.get("/v1/files", headers=auth(secret)).json
    assert listed["object"] == "list" and [x["id"] for x in listed["data"]] == [second["id"], f["id"]]
    page = client.get("/v1/files?limit=1&order=asc", headers=auth(secret)).json
    assert [x["id"] for x in page["data"]] == [f["id"]] and page["has_more"] is True
    rest = client.get(f"/v1/files?limit=1&order=asc&after={f['id']}", headers=auth(secret)).json
    assert [x["id"] for x in rest["data"]] == [second["id"]] and rest["has_more"] is False
    assert client.get("/v1/files?purpose=batch_output", headers=auth(secret)).json["data"] == []
    gone = client.delete(f"/v1/files/{f['id']}", headers=auth(secret))
    assert gone.json == {"id": f["id"], "object": "file", "deleted": True}
    assert client.get(f"/v1/files/{f['id']}", headers=auth(secret)).status_code == 404


@pytest.mark.parametrize("purpose", ["fine-tune", "assistants", "batch_output", ""])
def test_only_batch_purpose(client, make_key, purpose):
    secret, _ = make_key()
    r = upload(client, secret, jsonl(1), purpose=purpose)
    assert r.status_code == 400 and r.json["error"]["param"] == "purpose"
    assert client.get("/v1/files", headers=auth(secret)).json["data"] == []


def test_missing_parts(client, make_key):
    secret, _ = make_key()
    no_file = client.post("/v1/files", headers=auth(secret), data={"purpose": "batch"})
    assert no_file.status_code == 400 and no_file.json["error"]["param"] == "file"
    no_purpose = client.post("/v1/files", headers=auth(secret), data={"file": (io.BytesIO(jsonl(1)), "a.jsonl")})
    assert no_purpose.status_code == 400 and no_purpose.json["error"]["param"] == "purpose"
    empty = upload(client, secret, b"\n \n")
    assert empty.status_code == 400 and empty.json["error"]["code"] == "empty_file"


def test_limits(settings, db, make_key):
    from web import create_app

    # A request limit far below the upload: uploads have their own, larger limit.
    small = create_app(settings.with_(max_request_bytes=500, max_batch_file_bytes=4000, max_batch_lines=3))
    client = small.test_client()
    secret = client.post("/admin/keys", json={}, headers={"Authorization": "Bearer admin-test-key-0123456789"})
    secret = secret.json["key"]
    ok = upload(client, secret, jsonl(3, pad=200))
    assert ok.status_code == 200 and ok.json["bytes"] > 500
    many = upload(client, secret, jsonl(4))
    assert many.status_code == 400 and many.json["error"]["code"] == "too_many_lines"
    big = upload(client, secret, jsonl(2, pad=3000))
    assert big.status_code == 413 and big.json["error"]["code"] == "file_too_large"
    huge = upload(client, secret, jsonl(1, pad=200_000))
    assert huge.status_code == 413 and huge.json["error"]["code"] == "request_too_large"
    # Other routes keep the app's limit.
    chat = client.post("/v1/jobs", headers=auth(secret), json={"body": dict(LINE["body"], pad="x" * 1000)})
    assert chat.status_code == 413
    assert [f["bytes"] for f in client.get("/v1/files", headers=auth(secret)).json["data"]] == [ok.json["bytes"]]


def test_other_keys_get_404(client, make_key):
    mine, _ = make_key()
    theirs, _ = make_key()
    f = upload(client, mine, jsonl(1)).json
    for method, path in [
        ("get", f"/v1/files/{f['id']}"),
        ("get", f"/v1/files/{f['id']}/content"),
        ("delete", f"/v1/files/{f['id']}"),
        ("get", f"/v1/files?after={f['id']}"),
    ]:
        r = getattr(client, method)(path, headers=auth(theirs))
        assert r.status_code == 404 and r.json["error"]["code"] == "not_found", path
    assert client.get("/v1/files", headers=auth(theirs)).json["data"] == []
    assert client.get(f"/v1/files/{f['id']}", headers=auth(mine)).status_code == 200
    assert client.get("/v1/files").status_code == 401
