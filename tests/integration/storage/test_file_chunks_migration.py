"""Migration 0005 moves the files stored whole in `files.content` into 1 MiB chunks, byte for byte, and back down."""

from datetime import UTC, datetime

from sqlalchemy import create_engine, inspect, text

from llmproxy.storage import migrate
from tests.support.databases import needs_postgresql, scratch_postgresql

MIB = 1024 * 1024
CONTENTS = {"file-big": bytes(range(256)) * 10_000 + b"tail", "file-small": b'{"custom_id": "a"}\n'}


def _moves_and_back(url: str) -> None:
    migrate.upgrade(url, "0004")
    engine = create_engine(url)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO api_keys (id, key_hash, prefix, name, spend_usd, created_at) "
                "VALUES ('key_m', 'hash', 'sk-m', 'm', 0, :now)"
            ),
            {"now": now},
        )
        for file_id, content in CONTENTS.items():
            conn.execute(
                text(
                    "INSERT INTO files (id, api_key_id, purpose, filename, bytes, content, status, created_at) "
                    "VALUES (:id, 'key_m', 'batch', 'in.jsonl', :size, :content, 'processed', :now)"
                ),
                {"id": file_id, "size": len(content), "content": content, "now": now},
            )
    migrate.upgrade(url)
    assert "content" not in {column["name"] for column in inspect(engine).get_columns("files")}
    with engine.connect() as conn:
        for file_id, content in CONTENTS.items():
            chunks = [
                bytes(data)
                for (data,) in conn.execute(
                    text("SELECT data FROM file_chunks WHERE file_id = :id ORDER BY seq"), {"id": file_id}
                )
            ]
            assert b"".join(chunks) == content
            assert all(len(chunk) == MIB for chunk in chunks[:-1]) and 0 < len(chunks[-1]) <= MIB
    migrate.downgrade(url, "0004")
    assert "file_chunks" not in inspect(engine).get_table_names()
    with engine.connect() as conn:
        restored = {file_id: bytes(content) for file_id, content in conn.execute(text("SELECT id, content FROM files"))}
    assert restored == CONTENTS
    engine.dispose()


def test_sqlite_files_move_into_chunks_and_back(tmp_path):
    _moves_and_back(f"sqlite:///{tmp_path}/m.db")


@needs_postgresql
def test_postgresql_files_move_into_chunks_and_back():
    with scratch_postgresql() as url:
        _moves_and_back(url)
