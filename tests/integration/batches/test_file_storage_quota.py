"""A key's file storage quota: uploads that fit pass, the one that would cross it is refused with nothing stored,
deleting frees room; the key's own quota, the default and 0 (no quota); the admin API and the CLI edit it."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from llmproxy.batches import files, storage_quota
from llmproxy.batches.files import FileBuilder
from llmproxy.errors import ApiError
from llmproxy.storage.engine import session_scope
from llmproxy.storage.models import FileChunk, StoredFile
from llmproxy.storage.timestamps import utcnow
from tests.support import batching
from tests.support.cli import cli


def auth(secret):
    return {"Authorization": f"Bearer {secret}"}


def jsonl(size: int) -> bytes:
    """One JSONL line of exactly `size` bytes."""
    head = b'{"custom_id": "a", "pad": "'
    tail = b'"}\n'
    return head + b"x" * (size - len(head) - len(tail)) + tail


upload = batching.upload_file


def stored(db) -> tuple[int, int]:
    with session_scope(db) as session:
        return (
            session.scalar(select(func.count()).select_from(StoredFile)),
            session.scalar(select(func.count()).select_from(FileChunk)),
        )


def assert_quota_refusal(response, *, limit: int, used: int) -> None:
    assert response.status_code == 413, response.json
    error = response.json["error"]
    assert (error["type"], error["code"], error["param"]) == ("invalid_request_error", "storage_quota_exceeded", "file")
    assert f"{limit} bytes" in error["message"] and f"{used} are in use" in error["message"]


def test_uploads_fit_the_quota_until_one_would_cross_it_and_deleting_frees_room(client, make_key, db):
    secret, _ = make_key(max_file_storage_bytes=1000)
    first = upload(client, secret, jsonl(600))
    assert first.status_code == 200 and first.json["bytes"] == 600
    before = stored(db)
    # 600 + 401 crosses 1000: refused while streaming, nothing stored.
    assert_quota_refusal(upload(client, secret, jsonl(401)), limit=1000, used=600)
    assert stored(db) == before
    exact = upload(client, secret, jsonl(400))  # 600 + 400 is exactly the quota
    assert exact.status_code == 200
    assert_quota_refusal(upload(client, secret, jsonl(100)), limit=1000, used=1000)
    assert client.delete(f"/v1/files/{first.json['id']}", headers=auth(secret)).json["deleted"] is True
    assert upload(client, secret, jsonl(600)).status_code == 200


def test_the_default_applies_to_keys_without_their_own_and_zero_turns_it_off(settings, db):
    from web import create_app

    admin = {"Authorization": "Bearer admin-test-key-0123456789"}
    client = create_app(settings.with_(default_file_storage_bytes=500)).test_client()
    default = client.post("/admin/keys", json={}, headers=admin).json["key"]
    unlimited = client.post("/admin/keys", json={"max_file_storage_bytes": 0}, headers=admin).json["key"]
    larger = client.post("/admin/keys", json={"max_file_storage_bytes": 2000}, headers=admin).json["key"]
    assert_quota_refusal(upload(client, default, jsonl(501)), limit=500, used=0)
    assert upload(client, unlimited, jsonl(1500)).status_code == 200
    assert upload(client, unlimited, jsonl(1500)).status_code == 200
    assert upload(client, larger, jsonl(1500)).status_code == 200
    # Another key's files are not this key's usage.
    assert upload(client, default, jsonl(500)).status_code == 200

    no_default = create_app(settings.with_(default_file_storage_bytes=None)).test_client()
    assert upload(no_default, default, jsonl(1500)).status_code == 200


def test_expired_files_and_batch_results_do_not_count(client, make_key, db):
    secret, key = make_key(max_file_storage_bytes=1000)
    old = upload(client, secret, jsonl(900)).json
    with session_scope(db) as session:
        session.execute(
            update(StoredFile).where(StoredFile.id == old["id"]).values(expires_at=utcnow() - timedelta(seconds=1))
        )
        # A batch's output file is written by the proxy: not the caller's upload.
        builder = FileBuilder(
            session,
            api_key_id=key["id"],
            purpose=files.FilePurpose.BATCH_OUTPUT,
            filename="out.jsonl",
            retention_days=1,
        )
        builder.write(b"x" * 5000)
        builder.close()
    assert upload(client, secret, jsonl(1000)).status_code == 200


def test_the_quota_is_checked_again_when_the_file_is_stored(client, make_key, db, settings):
    # Two uploads of one key that both began with room: the one stored second is refused at the store.
    secret, key = make_key(max_file_storage_bytes=1000)
    with session_scope(db) as session:
        room = storage_quota.storage_room(session, key["id"], settings)
    assert room == storage_quota.StorageRoom(limit=1000, used=0)
    room.check(700)  # the slower upload streamed its 700 bytes within the room it saw
    assert upload(client, secret, jsonl(700)).status_code == 200  # meanwhile the other one was stored
    before = stored(db)
    with pytest.raises(ApiError) as refused, session_scope(db) as session:
        files.upload_file(
            session,
            api_key_id=key["id"],
            purpose="batch",
            filename="late.jsonl",
            source=io.BytesIO(jsonl(700)),
            size=700,
            settings=settings,
        )
    assert (refused.value.status, refused.value.code) == (413, "storage_quota_exceeded")
    assert stored(db) == before


def test_admin_api_edits_the_quota(client, make_key, admin_headers):
    _, key = make_key()
    assert key["max_file_storage_bytes"] is None
    path = f"/admin/keys/{key['id']}"
    patched = client.patch(path, json={"max_file_storage_bytes": 5 * 1024**4}, headers=admin_headers)
    assert patched.status_code == 200 and patched.json["max_file_storage_bytes"] == 5 * 1024**4
    assert client.get(path, headers=admin_headers).json["max_file_storage_bytes"] == 5 * 1024**4
    assert (
        client.patch(path, json={"max_file_storage_bytes": 0}, headers=admin_headers).json["max_file_storage_bytes"]
        == 0
    )
    assert (
        client.patch(path, json={"max_file_storage_bytes": None}, headers=admin_headers).json["max_file_storage_bytes"]
        is None
    )
    bad = client.patch(path, json={"max_file_storage_bytes": -1}, headers=admin_headers)
    assert bad.status_code == 400 and bad.json["error"]["param"] == "max_file_storage_bytes"


def test_cli_sets_the_quota(env, db):
    created = json.loads(cli(env, "keys", "create", "--name", "quota", "--max-file-storage", "1000").stdout)
    assert created["max_file_storage_bytes"] == 1000
    updated = json.loads(cli(env, "keys", "update", created["id"], "--max-file-storage", "0").stdout)
    assert updated["max_file_storage_bytes"] == 0
