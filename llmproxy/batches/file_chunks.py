"""A file's bytes in the database, at most CHUNK_BYTES a row (table `file_chunks`, numbered from 0 by `seq`).

No process ever holds a whole file: an upload is copied from its spool file a chunk at a time, a
batch's results are inserted as they are formatted, and downloads and batch inputs are read back a
chunk at a time (one query per chunk, so no driver buffers a whole result set either). Works the
same on PostgreSQL (bytea) and SQLite (blob).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session, sessionmaker

from llmproxy.storage.engine import session_scope
from llmproxy.storage.models import FileChunk

CHUNK_BYTES = 1024 * 1024


class ChunkWriter:
    """Appends bytes to a file's chunks; the file's row must be flushed first (the chunks reference it)."""

    def __init__(self, session: Session, file_id: str) -> None:
        self._session = session
        self._file_id = file_id
        self._pending = bytearray()
        self._seq = 0
        self.size = 0

    def write(self, data: bytes) -> None:
        """Add bytes at the end; each full chunk is inserted at once."""
        self._pending += data
        self.size += len(data)
        while len(self._pending) >= CHUNK_BYTES:
            self._insert(bytes(self._pending[:CHUNK_BYTES]))
            del self._pending[:CHUNK_BYTES]

    def copy_from(self, source: BinaryIO) -> None:
        """Add everything `source` reads to the end."""
        while data := source.read(CHUNK_BYTES):
            self.write(data)

    def close(self) -> int:
        """Insert what is left; return the file's size in bytes."""
        if self._pending:
            self._insert(bytes(self._pending))
            self._pending.clear()
        return self.size

    def _insert(self, data: bytes) -> None:
        # Core, not the ORM: a session would keep every inserted chunk in its identity map until the commit.
        self._session.execute(insert(FileChunk).values(file_id=self._file_id, seq=self._seq, data=data))
        self._seq += 1


def _chunk_after(session: Session, file_id: str, seq: int) -> tuple[int, bytes] | None:
    row = session.execute(
        select(FileChunk.seq, FileChunk.data)
        .where(FileChunk.file_id == file_id, FileChunk.seq > seq)
        .order_by(FileChunk.seq)
        .limit(1)
    ).first()
    return None if row is None else (row[0], bytes(row[1]))


def iter_chunks(session: Session, file_id: str) -> Iterator[bytes]:
    """The file's bytes, a chunk at a time, read through this session."""
    seq = -1
    while (chunk := _chunk_after(session, file_id, seq)) is not None:
        seq, data = chunk
        yield data


def stream_chunks(session_factory: sessionmaker[Session], file_id: str) -> Iterator[bytes]:
    """The file's bytes, a chunk at a time, each read in a short session of its own.

    For a download: a slow client must not hold a database connection for the whole transfer.
    """
    seq = -1
    while True:
        with session_scope(session_factory) as session:
            chunk = _chunk_after(session, file_id, seq)
        if chunk is None:
            return
        seq, data = chunk
        yield data


class _ChunkStream(io.RawIOBase):
    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._current = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, target: memoryview) -> int:  # type: ignore[override]  # RawIOBase's is typed loosely
        while not self._current:
            data = next(self._chunks, None)
            if data is None:
                return 0
            self._current = memoryview(data)
        n = min(len(target), len(self._current))
        target[:n] = self._current[:n]
        self._current = self._current[n:]
        return n


def open_chunks(chunks: Iterable[bytes]) -> BinaryIO:
    """A readable binary stream over chunks (e.g. iter_chunks), for line-by-line reading."""
    return io.BufferedReader(_ChunkStream(iter(chunks)), buffer_size=64 * 1024)


def delete_chunks(session: Session, file_ids: list[str]) -> None:
    """Delete these files' chunks (before their rows: the foreign key requires it)."""
    if file_ids:
        session.execute(
            delete(FileChunk).where(FileChunk.file_id.in_(file_ids)).execution_options(synchronize_session=False)
        )
