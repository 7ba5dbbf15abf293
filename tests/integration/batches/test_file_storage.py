"""Files in chunks: an upload is stored a chunk at a time and read back byte for byte; the size limit is
enforced while the body streams in (nothing stored); result files are written in chunks too."""

from __future__ import annotations

import hashlib
import io
import json

from sqlalchemy import func, select

from llmproxy.batches import file_chunks
from llmproxy.batches.files import FileBuilder
from llmproxy.storage.engine import session_scope
from llmproxy.storage.models import FileChunk, StoredFile
from tests.support import batching

ADMIN = {"Authorization": "Bearer admin-test-key-0123456789"}
MIB = file_chunks.CHUNK_BYTES


def auth(secret):
    return {"Authorization": f"Bearer {secret}"}


def awkward_file(size: int) -> bytes:
    """JSONL of about `size` bytes whose multi-byte characters, CRLFs and blank lines fall across chunk borders."""
    lines = []
    total = i = 0
    while total < size:
        line = json.dumps({"custom_id": f"r{i}", "pad": "é€😀" * (i % 97) + "x" * (i % 13)}, ensure_ascii=False)
        line = line.encode() + (b"\r\n" if i % 3 else b"\n\n")
        lines.append(line)
        total += len(line)
        i += 1
    return b"".join(lines)


def upload(client, secret, content, **kwargs):
    return batching.upload_file(client, secret, content, name="big.jsonl", **kwargs)


def chunk_sizes(db, file_id: str) -> list[int]:
    with session_scope(db) as session:
        rows = session.execute(
            select(FileChunk.seq, func.length(FileChunk.data))
            .where(FileChunk.file_id == file_id)
            .order_by(FileChunk.seq)
        ).all()
    assert [seq for seq, _ in rows] == list(range(len(rows)))
    return [size for _, size in rows]


def stored_counts(db) -> tuple[int, int]:
    with session_scope(db) as session:
        return (
            session.scalar(select(func.count()).select_from(StoredFile)),
            session.scalar(select(func.count()).select_from(FileChunk)),
        )


def test_an_upload_is_stored_in_chunks_and_read_back_byte_for_byte(client, make_key, db):
    secret, _ = make_key()
    content = awkward_file(2 * MIB + 12_345)
    r = upload(client, secret, content)
    assert r.status_code == 200, r.json
    assert r.json["bytes"] == len(content)
    sizes = chunk_sizes(db, r.json["id"])
    assert sizes == [MIB, MIB, len(content) - 2 * MIB]  # no row holds more than a chunk
    down = client.get(f"/v1/files/{r.json['id']}/content", headers=auth(secret))
    assert down.status_code == 200 and down.headers["Content-Length"] == str(len(content))
    assert hashlib.sha256(down.data).hexdigest() == hashlib.sha256(content).hexdigest()
    # Deleting the file deletes its chunks.
    assert client.delete(f"/v1/files/{r.json['id']}", headers=auth(secret)).json["deleted"] is True
    assert stored_counts(db) == (0, 0)


class CountingStream(io.BytesIO):
    """A request body that records how much of it the server read."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.read_bytes = 0

    def read(self, size=-1):
        data = super().read(size)
        self.read_bytes += len(data)
        return data


def test_the_size_limit_is_enforced_while_the_body_streams_in(settings, db):
    from web import create_app

    limit = 300_000
    app = create_app(settings.with_(max_batch_file_bytes=limit))
    client = app.test_client()
    secret = client.post("/admin/keys", json={}, headers=ADMIN).json["key"]
    # Within the body limit (file limit + 64 KiB for the form), so only the file's own measure can refuse it;
    # the purpose field comes last, as curl -F file=@… -F purpose=batch sends it.
    content = awkward_file(limit + 40_000)
    boundary = "b0undary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="in.jsonl"\r\n\r\n'.encode()
        + content
        + f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n--{boundary}--\r\n'.encode()
    )
    stream = CountingStream(body)
    r = client.post(
        "/v1/files",
        headers=auth(secret),
        input_stream=stream,
        content_type=f"multipart/form-data; boundary={boundary}",
    )
    assert r.status_code == 413, r.json
    assert (r.json["error"]["code"], r.json["error"]["param"]) == ("file_too_large", "file")
    assert stream.read_bytes < len(body)  # refused at the byte that crossed the limit, not after the whole body
    assert stored_counts(db) == (0, 0)
    # The same file within the limit is stored whole.
    small = content[: content.rfind(b"\n", 0, limit) + 1]
    ok = upload(client, secret, small)
    assert ok.status_code == 200 and ok.json["bytes"] == len(small)
    assert sum(chunk_sizes(db, ok.json["id"])) == len(small)


def test_a_bad_purpose_sent_before_the_file_is_refused_before_the_file_is_read(client, make_key, db):
    secret, _ = make_key()
    boundary = "xyz"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nfine-tune\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="in.jsonl"\r\n\r\n'.encode()
        + b'{"custom_id": "a"}\n' * 50_000
        + f"\r\n--{boundary}--\r\n".encode()
    )
    stream = CountingStream(body)
    r = client.post(
        "/v1/files",
        headers=auth(secret),
        input_stream=stream,
        content_type=f"multipart/form-data; boundary={boundary}",
    )
    assert r.status_code == 400 and r.json["error"]["param"] == "purpose"
    assert stream.read_bytes < len(body) // 2
    assert stored_counts(db) == (0, 0)


def test_a_malformed_multipart_body_is_400_and_stores_nothing(client, make_key, db):
    secret, _ = make_key()
    r = client.post(
        "/v1/files",
        headers=auth(secret),
        data=b'--abc\r\nContent-Disposition: form-data; name="file"; filename="a.jsonl"\r\n\r\n{"x": 1}\n',
        content_type="multipart/form-data; boundary=abc",
    )
    assert r.status_code == 400 and r.json["error"]["param"] == "file", r.json
    assert stored_counts(db) == (0, 0)


def test_a_file_built_in_pieces_is_chunked_and_reads_back_whole(db, make_key):
    _, key = make_key()
    pieces = [bytes([i % 251]) * (i * 7919 % 300_000) for i in range(1, 20)]
    with session_scope(db) as session:
        empty = FileBuilder(session, api_key_id=key["id"], purpose="batch_output", filename="e", retention_days=1)
        assert empty.close() is None  # nothing written: no file
        builder = FileBuilder(session, api_key_id=key["id"], purpose="batch_output", filename="o", retention_days=1)
        for piece in pieces:
            builder.write(piece)
        row = builder.close()
        file_id = row.id
    expected = b"".join(pieces)
    sizes = chunk_sizes(db, file_id)
    assert all(size == MIB for size in sizes[:-1]) and 0 < sizes[-1] <= MIB and sum(sizes) == len(expected)
    with session_scope(db) as session:
        assert session.get(StoredFile, file_id).size_bytes == len(expected)
        assert b"".join(file_chunks.iter_chunks(session, file_id)) == expected
        lines = file_chunks.open_chunks(file_chunks.iter_chunks(session, file_id)).read()
    assert lines == expected
    assert b"".join(file_chunks.stream_chunks(db, file_id)) == expected
