"""Validating a batch off the web thread: a worker reads its input file, checks every line, then starts it or fails it.

POST /v1/batches stores the batch `validating` (it holds one place among the key's queued jobs until
its lines are known) and sends `llmproxy.validate_batch`. The task reads the input file a chunk at a
time and checks every line; then it admits the lines (budget left, max_queued_jobs:
llmproxy.limits.queued) and, in one transaction, inserts one job per line and moves the batch to
`in_progress`; or it moves the batch to `failed` with OpenAI's `errors` object, storing and billing
nothing. Then the task sends the batch's first window of lines (llmproxy.batches.dispatch).

Crash safety: a second run redoes whatever a dead one did before its commit. A line's job id follows
from the batch id and the line's position, so a rerun admits the same ids (it forgets them first, so
a dead run's admission does not count twice); the commit is conditional on the batch still being
`validating`, and (batch_id, custom_id) is unique: two runs never store a line twice. A run touches the
batch as it reads (dispatch.touch); the batch sweeper sends the task again for a batch left
`validating` and untouched for a while (`stalled_validations`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from datetime import timedelta

import redis
from sqlalchemy import exists, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from llmproxy.batches import dispatch
from llmproxy.batches.file_chunks import iter_chunks, open_chunks
from llmproxy.batches.input_file import error_json, iter_lines, read_lines, validate_input
from llmproxy.batches.states import BatchStatus
from llmproxy.config import Settings
from llmproxy.errors import ApiError
from llmproxy.jobs.queues import Queue
from llmproxy.jobs.states import JobStatus
from llmproxy.jsontypes import JSON
from llmproxy.keys import key_state
from llmproxy.limits.queued import admit_submission, forget_queued
from llmproxy.operations import OPERATION_OF_URL
from llmproxy.storage.engine import rowcount, session_scope
from llmproxy.storage.models import ApiKey, Batch, Job, StoredFile
from llmproxy.storage.timestamps import utcnow

INSERT_CHUNK = 1000  # lines a multi-row INSERT: 50,000 lines are not 50,000 round trips, nor 50,000 bodies in memory
TOUCH_EVERY = 1000  # lines read between two touches of the batch (its run is alive)


def line_ids(batch_id: str, total: int) -> list[str]:
    """The job ids of a batch's lines, fixed by the batch and the line's position (a rerun finds the same ones)."""
    base = batch_id.removeprefix("batch_")
    return [f"job_{base}_{number:06d}" for number in range(total)]


def validate_batch(
    session_factory: sessionmaker[Session], client: redis.Redis, batch_id: str, *, settings: Settings
) -> BatchStatus | None:
    """Validate a `validating` batch: store its lines and start it (committed; the caller then sends its first
    lines, dispatch.top_up), or fail it with `errors`.

    Returns the batch's new status, or None when there was nothing to do (it is not validating, or
    another run got there first).
    """
    with session_scope(session_factory) as session:
        batch = session.get(Batch, batch_id)
        if batch is None or batch.status != BatchStatus.VALIDATING:
            return None
        dispatch.touch(client, [batch_id])
        return _validate(session, client, batch, settings)


def _validate(session: Session, client: redis.Redis, batch: Batch, settings: Settings) -> BatchStatus | None:
    key = session.get(ApiKey, batch.api_key_id)
    if key is None or key.revoked_at is not None:
        return _fail(session, client, batch, [_whole_file(key_state.revoked())])
    if session.get(StoredFile, batch.input_file_id) is None:
        message = "The input file was deleted before the batch was validated"
        return _fail(session, client, batch, [error_json("invalid_input_file", message, None, "input_file_id")])
    total, errors = validate_input(
        session, key, _lines(session, client, batch), endpoint=batch.endpoint, max_lines=settings.max_batch_lines
    )
    if errors:
        return _fail(session, client, batch, errors)
    ids = line_ids(batch.id, total)
    # The batch's own place while it validated, and whatever a dead run admitted, make room for its lines.
    forget_queued(client, key.id, [batch.id, *ids])
    try:
        admit_submission(client, key=key, job_ids=ids, settings=settings)
    except ApiError as refused:
        return _fail(session, client, batch, [_whole_file(refused)])
    try:
        _insert_lines(session, client, batch, ids)
        started = session.execute(
            update(Batch)
            .where(Batch.id == batch.id, Batch.status == BatchStatus.VALIDATING)
            .values(status=BatchStatus.IN_PROGRESS, in_progress_at=utcnow(), total=total)
            .execution_options(synchronize_session=False)
        )
        if rowcount(started) == 1:
            return BatchStatus.IN_PROGRESS
    except IntegrityError:
        pass  # another run stored the lines first
    batch_id, key_id = batch.id, key.id
    session.rollback()
    if not session.scalar(select(exists().where(Job.batch_id == batch_id))):
        forget_queued(client, key_id, ids)  # cancelled meanwhile: these lines will never be stored
    return None


def _lines(session: Session, client: redis.Redis, batch: Batch) -> Iterator[tuple[int, str]]:
    lines = iter_lines(open_chunks(iter_chunks(session, batch.input_file_id)))
    return _touching(client, batch.id, lines)


def _touching(client: redis.Redis, batch_id: str, lines: Iterable[tuple[int, str]]) -> Iterator[tuple[int, str]]:
    # A large file takes a while: the sweeper must see that this run is alive.
    for count, line in enumerate(lines, start=1):
        if count % TOUCH_EVERY == 0:
            dispatch.touch(client, [batch_id])
        yield line


def _insert_lines(session: Session, client: redis.Redis, batch: Batch, ids: list[str]) -> None:
    now = utcnow()
    rows: list[JSON] = []
    for line_id, (custom_id, body) in zip(ids, read_lines(_lines(session, client, batch)), strict=True):
        rows.append(
            dict(
                id=line_id,
                api_key_id=batch.api_key_id,
                model=body["model"],
                status=JobStatus.QUEUED,
                queue=Queue.BATCH,
                operation=OPERATION_OF_URL[batch.endpoint],
                stream=False,
                request=body,
                meta=None,
                batch_id=batch.id,
                custom_id=custom_id,
                attempts=[],
                run_count=0,
                cancel_requested=False,
                created_at=now,
            )
        )
        if len(rows) == INSERT_CHUNK:
            session.execute(insert(Job), rows)
            rows.clear()
    if rows:
        session.execute(insert(Job), rows)


def _whole_file(refusal: ApiError) -> JSON:
    return error_json(refusal.code or "invalid_request", refusal.message, None, refusal.param)


def _fail(session: Session, client: redis.Redis, batch: Batch, errors: list[JSON]) -> BatchStatus | None:
    failed = session.execute(
        update(Batch)
        .where(Batch.id == batch.id, Batch.status == BatchStatus.VALIDATING)
        .values(status=BatchStatus.FAILED, failed_at=utcnow(), errors={"object": "list", "data": errors})
        .execution_options(synchronize_session=False)
    )
    forget_queued(client, batch.api_key_id, [batch.id])
    return BatchStatus.FAILED if rowcount(failed) == 1 else None


def stalled_validations(
    session_factory: sessionmaker[Session], client: redis.Redis, *, stale_seconds: float, limit: int = 100
) -> list[str]:
    """`validating` batches that no run has touched for `stale_seconds` (their message was lost or their worker
    died); each is touched now, so the sweeper sends it again at most once a period."""
    cutoff = utcnow() - timedelta(seconds=stale_seconds)
    with session_scope(session_factory) as session:
        candidates = list(
            session.scalars(
                select(Batch.id)
                .where(Batch.status == BatchStatus.VALIDATING, Batch.created_at < cutoff)
                .order_by(Batch.created_at)
                .limit(limit)
            )
        )
    if not candidates:
        return []
    recent = time.time() - stale_seconds
    scores = client.zmscore(dispatch.TOUCHED_KEY, candidates)
    stalled = [batch_id for batch_id, score in zip(candidates, scores) if score is None or score < recent]
    if stalled:
        dispatch.touch(client, stalled)
    return stalled
