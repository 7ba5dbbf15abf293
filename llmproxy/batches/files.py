"""Files of the Batch API: uploaded inputs (purpose `batch`) and batch results (`batch_output`), stored in the DB.

A file's row holds what the file object shows; its bytes are chunks (llmproxy.batches.file_chunks).
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from functools import partial
from typing import BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from llmproxy import json_schema as js
from llmproxy.batches.file_chunks import ChunkWriter, delete_chunks
from llmproxy.batches.storage_quota import check_quota_after_upload
from llmproxy.batches.upload_limits import file_too_large
from llmproxy.config import Settings
from llmproxy.errors import bad_request, not_found
from llmproxy.ids import new_file_id
from llmproxy.jsontypes import JSON
from llmproxy.storage.models import StoredFile
from llmproxy.storage.pagination import page_after
from llmproxy.storage.timestamps import to_epoch, utcnow


class FilePurpose(StrEnum):
    """What a file is for: a batch's input (uploaded), or a batch's output or error file (written by us)."""

    BATCH = "batch"
    BATCH_OUTPUT = "batch_output"


def create_file(session: Session, *, api_key_id: str, purpose: str, filename: str, retention_days: float) -> StoredFile:
    """Insert an empty file row (flushed, so chunks may follow; the caller commits); it expires with the retention."""
    now = utcnow()
    row = StoredFile(
        id=new_file_id(),
        api_key_id=api_key_id,
        purpose=purpose,
        filename=filename[-512:],
        size_bytes=0,
        status="processed",
        created_at=now,
        expires_at=now + timedelta(days=retention_days),
    )
    session.add(row)
    session.flush()
    return row


class FileBuilder:
    """A file written as its bytes are made; its row is created with the first bytes (no bytes: no file)."""

    def __init__(
        self, session: Session, *, api_key_id: str, purpose: str, filename: str, retention_days: float
    ) -> None:
        self._session = session
        self._create = partial(
            create_file,
            session,
            api_key_id=api_key_id,
            purpose=purpose,
            filename=filename,
            retention_days=retention_days,
        )
        self._row: StoredFile | None = None
        self._writer: ChunkWriter | None = None

    def write(self, data: bytes) -> None:
        """Append bytes to the file."""
        if self._writer is None:
            self._row = self._create()
            self._writer = ChunkWriter(self._session, self._row.id)
        self._writer.write(data)

    def close(self) -> StoredFile | None:
        """Write the last chunk and the file's size; the file's row, or None if nothing was written."""
        if self._row is None or self._writer is None:
            return None
        self._row.size_bytes = self._writer.close()
        return self._row


def check_purpose(purpose: str | None) -> None:
    """400 unless the purpose is `batch` (the only one callers may upload)."""
    if purpose != FilePurpose.BATCH:
        raise bad_request(
            "'purpose' must be 'batch': this proxy stores files for the Batch API only",
            code="invalid_purpose",
            param="purpose",
        )


def check_filename(filename: str) -> None:
    """400 for a name the database cannot store."""
    if "\x00" in filename:  # stored as text, which PostgreSQL refuses with a NUL in it
        raise bad_request("The file's name must not contain U+0000 (NUL)", param="file")


def upload_file(
    session: Session,
    *,
    api_key_id: str,
    purpose: str | None,
    filename: str,
    source: BinaryIO,
    size: int,
    settings: Settings,
) -> StoredFile:
    """Store an uploaded batch input file, copied from `source` a chunk at a time (the caller commits).

    The caller measured the file as it arrived (llmproxy.batches.upload_limits); `size` is its length.
    The key's storage quota is checked again once the file is written (413, nothing stored): see
    llmproxy.batches.storage_quota.check_quota_after_upload.
    """
    check_purpose(purpose)
    check_filename(filename)
    if size > settings.max_batch_file_bytes:
        raise file_too_large(settings.max_batch_file_bytes)
    row = create_file(
        session,
        api_key_id=api_key_id,
        purpose=FilePurpose.BATCH,
        filename=filename,
        retention_days=settings.retention_days,
    )
    writer = ChunkWriter(session, row.id)
    writer.copy_from(source)
    row.size_bytes = writer.close()
    check_quota_after_upload(session, api_key_id=api_key_id, size=row.size_bytes, settings=settings)
    return row


def get_own_file(session: Session, api_key_id: str, file_id: str) -> StoredFile:
    """The caller's file; another key's file is 404, like an unknown one."""
    row = session.get(StoredFile, file_id)
    if row is None or row.api_key_id != api_key_id:
        raise not_found("file")
    return row


def list_files(
    session: Session, api_key_id: str, *, purpose: str | None, limit: int, after: str | None, newest_first: bool = True
) -> tuple[list[StoredFile], bool]:
    """This key's files after the cursor file; returns (page, has_more)."""
    query = select(StoredFile).where(StoredFile.api_key_id == api_key_id)
    if purpose:
        query = query.where(StoredFile.purpose == purpose)
    cursor = get_own_file(session, api_key_id, after) if after else None
    return page_after(session, query, StoredFile, cursor=cursor, limit=limit, newest_first=newest_first)


def delete_file(session: Session, row: StoredFile) -> JSON:
    """Delete the file and its chunks (a batch already made from it keeps running: its lines are jobs)."""
    delete_chunks(session, [row.id])
    session.delete(row)
    return {"id": row.id, "object": "file", "deleted": True}


FILE_SCHEMA = js.record(
    {
        "id": js.string(),
        "object": js.const("file"),
        "bytes": js.integer(0),
        "created_at": js.epoch(),
        "expires_at": js.epoch(),
        "filename": js.string(),
        "purpose": js.string(),
        "status": js.string(),
        "status_details": js.NULL,
    }
)
DELETED_FILE_SCHEMA = js.record({"id": js.string(), "object": js.const("file"), "deleted": js.BOOLEAN})


def file_json(row: StoredFile) -> JSON:
    """OpenAI's file object."""
    return {
        "id": row.id,
        "object": "file",
        "bytes": row.size_bytes,
        "created_at": to_epoch(row.created_at),
        "expires_at": to_epoch(row.expires_at),
        "filename": row.filename,
        "purpose": row.purpose,
        "status": row.status,
        "status_details": None,
    }
