"""The group-committing writer: ended jobs' records go from the Redis Stream to the database, many per transaction.

Every `writer` process is a consumer of one consumer group on the records stream. It reads
what has accumulated (up to BATCH entries), stores all of it in one transaction (job rows
inserted or updated, ledger rows, each key's spend added once per batch), and only then
acknowledges and deletes the entries. A writer killed before its commit leaves them pending:
another writer (or its successor) claims them after CLAIM_IDLE_MS and stores them again. The
ledger's unique job_id and the rows' final status make that replay change nothing twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
from sqlalchemy import bindparam, or_, select
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError
from sqlalchemy.orm import Session, sessionmaker

from llmproxy.billing import rollup
from llmproxy.billing.ledger import LEDGER, record_charges
from llmproxy.jobs import live
from llmproxy.jobs.records import RECORDS_STREAM, Record
from llmproxy.jobs.states import FINAL_JOB_STATUSES, JobStatus
from llmproxy.jobs.store import JOB_COLUMNS, JOBS
from llmproxy.storage.engine import session_scope
from llmproxy.telemetry.metrics import Counters, record_lag

log = logging.getLogger(__name__)

ROLE = "writer"  # its heartbeat's name (llmproxy.telemetry.heartbeats), for readiness
GROUP = "writers"
DEAD_LETTERS = "llmproxy:records:dead"  # entries no transaction can store, kept for an operator to read
BATCH = 1000
BLOCK_MS = 1000
CLAIM_IDLE_MS = 10_000  # a pending entry this old belongs to a writer that died (a commit takes far less)
CLAIM_EVERY_SECONDS = 5.0

_OUTCOME_FIELDS = (
    "status",
    "result",
    "error",
    "error_status",
    "attempts",
    "usage",
    "cost_usd",
    "served_model",
    "served_provider",
    "run_count",
    "started_at",
    "completed_at",
)

# A stored job's row gets its outcome once: a replay finds it final and changes nothing.
_STORE_OUTCOME = (
    JOBS.update()
    # or_, not in_: an IN list is an "expanding" parameter, which executemany refuses.
    .where(
        JOBS.c.id == bindparam("p_id"), or_(JOBS.c.status == JobStatus.QUEUED, JOBS.c.status == JobStatus.IN_PROGRESS)
    )
    .values({**{name: bindparam("p_" + name) for name in _OUTCOME_FIELDS}, "lease_expires_at": None})
)

_INSERT_DEFAULTS = {
    # Live jobs (migration 0008 added the column) do not carry their operation yet: every one is a chat job.
    "operation": "chat",
    "idempotency_key": None,
    "request_hash": None,
    "cancel_requested": False,
    "lease_expires_at": None,
    "enqueued_at": None,
}


def ensure_group(client: redis.Redis) -> None:
    """Create the writers' consumer group (and the stream) if missing; entries already there are read too."""
    try:
        client.xgroup_create(RECORDS_STREAM, GROUP, id="0", mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def store_records(session: Session, records: list[Record]) -> int:
    """Store ended jobs and bill them in the session's transaction; returns how many ledger rows were new."""
    ids = [record.job_id for record in records]
    conn = session.connection()
    existing = dict(conn.execute(select(JOBS.c.id, JOBS.c.status).where(JOBS.c.id.in_(ids))).tuples().all())
    new_rows = [
        {column.key: record.row.get(attr, _INSERT_DEFAULTS.get(attr)) for attr, column in JOB_COLUMNS}
        for record in records
        if record.job_id not in existing
    ]
    if new_rows:
        conn.execute(JOBS.insert(), new_rows)
    outcomes = [
        {"p_id": record.job_id, **{"p_" + name: record.row[name] for name in _OUTCOME_FIELDS}}
        for record in records
        if record.job_id in existing
    ]
    if outcomes:
        conn.execute(_STORE_OUTCOME, outcomes)
    billed = set(conn.execute(select(LEDGER.c.job_id).where(LEDGER.c.job_id.in_(ids))).scalars())
    charges = [r.charge for r in records if r.charge is not None and r.job_id not in billed]
    record_charges(conn, charges)
    rollup.add_charges(conn, charges)  # the same new ledger rows, in the same transaction: summed once
    # Failed jobs whose failure is stored now (new rows, or stored rows that were still running): counted once.
    failed = [
        r for r in records if r.row["status"] == JobStatus.FAILED and existing.get(r.job_id) not in FINAL_JOB_STATUSES
    ]
    rollup.add_failures(
        conn,
        [
            (r.row["completed_at"], r.row["api_key_id"], r.row["model"], rollup.error_code(r.row["error"]))
            for r in failed
        ],
    )
    return len(charges)


_Dead = tuple[str, dict[Any, Any], str]  # entry id, its fields, why it could not be stored


@dataclass
class WriteRound:
    """What one round did."""

    read: int = 0
    stored: int = 0
    billed: int = 0
    dead: int = 0


class RecordWriter:
    """One consumer of the records stream; `step()` runs one round (read, store, acknowledge)."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        client: redis.Redis,
        *,
        consumer: str,
        counters: Counters | None = None,
        batch: int = BATCH,
        block_ms: int = BLOCK_MS,
        on_stored: Callable[[list[Record]], None] | None = None,
    ) -> None:
        self._session_factory = session_factory
        self._client = client
        self._consumer = consumer
        self._counters = counters
        self._batch = batch
        self._block_ms = block_ms
        self._on_stored = on_stored
        self._own_pending = True  # first read what this consumer name left unacknowledged
        self._next_claim = 0.0
        ensure_group(client)

    def step(self) -> WriteRound:
        """Read what is waiting (blocking up to block_ms), store it in one transaction, acknowledge it.

        A database error propagates, leaving the entries pending for the next step.
        """
        entries = self._read()
        round_ = WriteRound(read=len(entries))
        if not entries:
            return round_
        records: list[Record] = []
        broken: list[_Dead] = []
        for entry_id, fields in entries:
            try:
                records.append(Record.decode(entry_id, fields))
            except (KeyError, ValueError, TypeError, AttributeError, ArithmeticError):
                broken.append((entry_id, fields, "malformed record"))
        records = _latest_per_job(records)
        stored = records
        try:
            with session_scope(self._session_factory) as session:
                round_.billed = store_records(session, records) if records else 0
        except StatementError as exc:
            if not _bad_record(exc):
                self._own_pending = True
                raise
            # One bad record must not hold the others back: store them one by one.
            log.warning("a round of %d records failed (%s); storing them one by one", len(records), exc)
            stored, dead = self._one_by_one(records, round_)
            broken += dead
        except Exception:
            self._own_pending = True
            raise
        round_.stored, round_.dead = len(stored), len(broken)
        self._acknowledge([entry_id for entry_id, _ in entries], stored, broken)
        return round_

    def drain(self, *, timeout: float = 30.0) -> int:
        """Steps until a round reads nothing (for tests and shutdown); returns how many records were stored."""
        deadline = time.monotonic() + timeout
        total = 0
        while time.monotonic() < deadline:
            round_ = self.step()
            total += round_.stored
            if round_.read == 0:
                return total
        raise TimeoutError("the records stream did not drain in time")

    def _read(self) -> list[tuple[str, dict[bytes, bytes]]]:
        try:
            return self._read_group()
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            # Redis restarted empty (or was flushed): the group went with the stream.
            ensure_group(self._client)
            return []

    def _read_group(self) -> list[tuple[str, dict[bytes, bytes]]]:
        client, stream = self._client, RECORDS_STREAM
        if self._own_pending:
            reply = client.xreadgroup(GROUP, self._consumer, {stream: "0"}, count=self._batch)
            entries = _entries(reply)
            if entries:
                return entries
            self._own_pending = False
        if time.monotonic() >= self._next_claim:
            self._next_claim = time.monotonic() + CLAIM_EVERY_SECONDS
            claimed: Any = client.xautoclaim(stream, GROUP, self._consumer, CLAIM_IDLE_MS, "0-0", count=self._batch)
            entries = [(_text(i), f) for i, f in claimed[1] if f]
            if entries:
                log.info("took over %d records a stopped writer had left", len(entries))
                return entries
        reply = client.xreadgroup(GROUP, self._consumer, {stream: ">"}, count=self._batch, block=self._block_ms)
        return _entries(reply)

    def _one_by_one(self, records: list[Record], round_: WriteRound) -> tuple[list[Record], list[_Dead]]:
        stored: list[Record] = []
        dead: list[_Dead] = []
        for record in records:
            try:
                with session_scope(self._session_factory) as session:
                    round_.billed += store_records(session, [record])
                stored.append(record)
            except StatementError as exc:
                if not _bad_record(exc):
                    self._own_pending = True
                    raise
                log.error("record of job %s cannot be stored (%s); kept in %s", record.job_id, exc, DEAD_LETTERS)
                dead.append((record.entry_id, {"id": record.job_id, "error": str(exc)[:500]}, "store failed"))
        return stored, dead

    def _acknowledge(self, entry_ids: list[str], stored: list[Record], broken: list[_Dead]) -> None:
        now_ms = time.time() * 1000
        pipe = self._client.pipeline(transaction=False)
        for entry_id, fields, reason in broken:
            dead: dict[Any, Any] = {**_plain(fields), "reason": reason, "entry": entry_id}
            pipe.xadd(DEAD_LETTERS, dead)
        pipe.xack(RECORDS_STREAM, GROUP, *entry_ids)
        pipe.xdel(RECORDS_STREAM, *entry_ids)
        pipe.execute()
        live.forget_recorded(self._client, [record.job_id for record in stored])
        if self._counters is not None:
            for record in stored:
                record_lag(self._counters, max(0, int(now_ms - record.ended_at_ms)))
        if self._on_stored is not None and stored:
            self._on_stored(stored)


def _latest_per_job(records: list[Record]) -> list[Record]:
    # Only one run can end a job, but a replayed entry may sit beside its first copy: keep one per job.
    return list({record.job_id: record for record in records}.values())


def _bad_record(exc: StatementError) -> bool:
    # What one record's values can cause (a constraint, a value the column refuses, a value that cannot be
    # bound); anything else (the database is down or restarting) is retried whole later.
    return isinstance(exc, IntegrityError | DataError) or not isinstance(exc, DBAPIError)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _plain(fields: dict[Any, Any]) -> dict[str, str]:
    return {_text(k): _text(v) if isinstance(v, bytes | str) else str(v) for k, v in fields.items()}


def _entries(reply: Any) -> list[tuple[str, dict[bytes, bytes]]]:
    entries: list[tuple[str, dict[bytes, bytes]]] = []
    for _stream, items in reply or []:
        entries += [(_text(entry_id), fields) for entry_id, fields in items if fields]
    return entries
