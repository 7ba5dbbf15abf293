"""A key's file storage quota: the bytes of its uploaded, unexpired files plus a new upload stay within it.

Only what callers upload counts (purpose `batch`): batch output and error files are written by the proxy,
their size follows from requests the key's other limits already admitted, and a full quota must not make
a finished batch lose its results. An expired file no longer counts, even before the purge removes it.
The quota is the key's `max_file_storage_bytes`, else DEFAULT_FILE_STORAGE_BYTES; 0 in either is no quota.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from llmproxy.config import Settings
from llmproxy.errors import ApiError
from llmproxy.storage.models import ApiKey, StoredFile
from llmproxy.storage.timestamps import utcnow

# FilePurpose.BATCH; llmproxy.batches.files imports this module, so the value is spelled here.
UPLOADED_PURPOSE = "batch"


def storage_quota_exceeded(limit: int, used: int) -> ApiError:
    """413 for an upload that would take the key's stored files over its quota."""
    return ApiError(
        413,
        f"You have exceeded your file storage quota: this key may store {limit} bytes of files and "
        f"{used} are in use. Delete files you no longer need, or ask the operator to raise the quota",
        code="storage_quota_exceeded",
        param="file",
    )


def storage_limit(session: Session, api_key_id: str, settings: Settings) -> int | None:
    """The key's quota in bytes (its own, else the deployment's default); None: no quota."""
    own = session.scalar(select(ApiKey.max_file_storage_bytes).where(ApiKey.id == api_key_id))
    limit = own if own is not None else settings.default_file_storage_bytes
    return limit or None


def stored_bytes(session: Session, api_key_id: str) -> int:
    """Bytes of the key's uploaded files that have not expired."""
    total = session.scalar(
        select(func.coalesce(func.sum(StoredFile.size_bytes), 0)).where(
            StoredFile.api_key_id == api_key_id,
            StoredFile.purpose == UPLOADED_PURPOSE,
            or_(StoredFile.expires_at.is_(None), StoredFile.expires_at > utcnow()),
        )
    )
    return int(total or 0)


@dataclass(frozen=True)
class StorageRoom:
    """A key's quota and what its files used when the upload began: what the upload may add."""

    limit: int
    used: int

    def check(self, size: int) -> None:
        """413 `storage_quota_exceeded` once an upload of `size` bytes would not fit."""
        if self.used + size > self.limit:
            raise storage_quota_exceeded(self.limit, self.used)


def storage_room(session: Session, api_key_id: str, settings: Settings) -> StorageRoom | None:
    """The room the key's quota leaves for an upload; None: no quota."""
    limit = storage_limit(session, api_key_id, settings)
    return None if limit is None else StorageRoom(limit, stored_bytes(session, api_key_id))


def check_quota_after_upload(session: Session, *, api_key_id: str, size: int, settings: Settings) -> None:
    """Refuse (413) if the key's files, this transaction's new one of `size` bytes included, exceed its quota.

    Called once the upload's rows are written, just before the caller commits, so two concurrent uploads of
    one key cannot both pass on a count that misses the other: on PostgreSQL a transaction-scoped advisory
    lock per key orders them (the second counts after the first committed); SQLite has one writer at a time,
    and this transaction has written already. The raise rolls the upload back: nothing is stored.
    """
    if session.get_bind().dialect.name == "postgresql":
        # An advisory lock, not a row lock on api_keys: the ledger writer updates that row's spend.
        session.execute(select(func.pg_advisory_xact_lock(_lock_id(api_key_id))))
    limit = storage_limit(session, api_key_id, settings)
    if limit is None:
        return
    used = stored_bytes(session, api_key_id)
    if used > limit:
        raise storage_quota_exceeded(limit, used - size)


def _lock_id(api_key_id: str) -> int:
    # A signed 64-bit number for pg_advisory_xact_lock, stable across processes (unlike hash()).
    return int.from_bytes(hashlib.sha256(b"file-storage:" + api_key_id.encode()).digest()[:8], "big", signed=True)
