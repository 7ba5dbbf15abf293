"""Files of the Batch API: uploaded inputs (purpose `batch`) and batch results (`batch_output`), stored in the DB."""

from __future__ import annotations

import io
from datetime import timedelta
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from llmproxy.config import Settings
from llmproxy.errors import ApiError, bad_request, not_found
from llmproxy.ids import new_file_id
from llmproxy.jsontypes import JSON
from llmproxy.storage.models import StoredFile
from llmproxy.storage.pagination import page_after
from llmproxy.storage.timestamps import to_epoch, utcnow


class FilePurpose(StrEnum):
    """What a file is for: a batch's input (uploaded), or a batch's output or error file (written by us)."""

    BATCH = "batch"
    BATCH_OUTPUT = "batch_output"


def store_file(
    session: Session, *, api_key_id: str, purpose: str, filename: str, content: bytes, retention_days: float
) -> StoredFile:
    """Insert a file row (the caller commits); it expires with the retention period."""
    now = utcnow()
    row = StoredFile(
        id=new_file_id(),
        api_key_id=api_key_id,
        purpose=purpose,
        filename=filename[-512:],
        size_bytes=len(content),
        content=content,
        status="processed",
        created_at=now,
        expires_at=now + timedelta(days=retention_days),
    )
    session.add(row)
    return row


def count_lines(content: bytes, stop_after: int) -> int:
    """Non-blank lines of a JSONL file, counting no further than `stop_after` + 1."""
    if content.count(b"\n") + 1 <= stop_after:
        return content.count(b"\n") + 1  # an upper bound under the limit is all we need
    count = 0
    for line in io.BytesIO(content):
        if line.strip():
            count += 1
            if count > stop_after:
                break
    return count


def upload_file(
    session: Session, *, api_key_id: str, purpose: str | None, filename: str, content: bytes, settings: Settings
) -> StoredFile:
    """Accept a batch input file within the size and line limits; 400/413 otherwise, nothing stored."""
    if purpose != FilePurpose.BATCH:
        raise bad_request(
            "'purpose' must be 'batch': this proxy stores files for the Batch API only",
            code="invalid_purpose",
            param="purpose",
        )
    if "\x00" in filename:  # stored as text, which PostgreSQL refuses with a NUL in it
        raise bad_request("The file's name must not contain U+0000 (NUL)", param="file")
    if len(content) > settings.max_batch_file_bytes:
        raise ApiError(
            413,
            f"The file is larger than the limit of {settings.max_batch_file_bytes} bytes",
            code="file_too_large",
            param="file",
        )
    if not content.strip():
        raise bad_request("The file is empty", code="empty_file", param="file")
    if count_lines(content, settings.max_batch_lines) > settings.max_batch_lines:
        raise bad_request(
            f"The file has more than {settings.max_batch_lines} requests", code="too_many_lines", param="file"
        )
    return store_file(
        session,
        api_key_id=api_key_id,
        purpose=purpose,
        filename=filename,
        content=content,
        retention_days=settings.retention_days,
    )


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
    """Delete the file (a batch already made from it keeps running: its lines are jobs)."""
    session.delete(row)
    return {"id": row.id, "object": "file", "deleted": True}


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
