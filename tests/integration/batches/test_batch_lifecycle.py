"""Batch internals that need no worker: dispatch in chunks, lost-line detection, finalizing exactly once
(also when many try at once, or when a finalizer died), and retention (the ledger stays)."""

import threading
import time
from datetime import timedelta
from decimal import Decimal

import pytest
import redis as redis_lib
from sqlalchemy import func, select, update

from llmproxy.batches import dispatch, file_chunks, validation
from llmproxy.batches import results as batche_results
from llmproxy.config import ConfigError, load_settings
from llmproxy.jobs.queues import Queue
from llmproxy.jobs.states import JobStatus
from llmproxy.jobs.store import create_job
from llmproxy.ops import retention
from llmproxy.storage.engine import session_scope
from llmproxy.storage.models import ApiKey, Batch, FileChunk, Job, StoredFile, UsageEntry
from llmproxy.storage.rollups import LATENCY_BUCKETS, UsageRollup
from llmproxy.storage.timestamps import utcnow
from tests.support import batching as b


def make_batch(db, settings, key_id: str, n: int) -> str:
    """A batch stored and validated straight through llmproxy (nothing is sent to any queue)."""
    batch_id = b.stored_batch(db, settings, key_id, b.file_of(n))
    client = redis_lib.Redis.from_url(settings.redis_url)
    try:
        assert validation.validate_batch(db, client, batch_id, settings=settings) == "in_progress"
    finally:
        client.close()
    return batch_id


def file_bytes(session, file_id: str) -> bytes:
    return b"".join(file_chunks.iter_chunks(session, file_id))


def end_lines(db, batch_id: str, failed: int = 0) -> None:
    """Mark every line completed (the first `failed` ones failed), as workers would."""
    with session_scope(db) as session:
        ids = list(session.scalars(select(Job.id).where(Job.batch_id == batch_id).order_by(Job.id)))
        for i, job_id in enumerate(ids):
            ok = i >= failed
            session.execute(
                update(Job)
                .where(Job.id == job_id)
                .values(
                    status=JobStatus.COMPLETED if ok else JobStatus.FAILED,
                    completed_at=utcnow(),
                    error_status=None if ok else 400,
                    result={"object": "chat.completion", "choices": []} if ok else None,
                    error=None
                    if ok
                    else {"message": "bad", "type": "invalid_request_error", "code": None, "param": None},
                )
            )


def set_column(db, model, ident, **values):
    with session_scope(db) as session:
        session.execute(update(model).where(model.id == ident).values(**values))


def never(_ids):
    raise AssertionError("nothing should be sent")


def test_lines_are_sent_a_window_at_a_time(db, settings, make_key):
    _, unlimited = make_key()
    _, limited = make_key(rpm_limit=12)
    sent: list[list[str]] = []
    everything = make_batch(db, settings, unlimited["id"], 23)
    assert dispatch.top_up(db, everything, send=sent.append) == 23  # within MAX_WINDOW
    assert dispatch.top_up(db, everything, send=never) == 0  # a redelivered dispatch sends nothing
    batch_id = make_batch(db, settings, limited["id"], 30)
    sent.clear()
    # The key's RPM is the window: more lines in flight would only be deferred again and again.
    assert dispatch.top_up(db, batch_id, send=sent.append) == 12
    assert dispatch.top_up(db, batch_id, send=never) == 0
    first = sent[0]
    with session_scope(db) as session:
        session.execute(update(Job).where(Job.id.in_(first[:5])).values(status="completed"))
    assert dispatch.top_up(db, batch_id, send=sent.append) == 5
    while dispatch.send_next(db, batch_id, send=sent.append):
        pass  # each line that ends sends the next one
    ids = [i for chunk in sent for i in chunk]
    assert sorted(ids) == sorted(j.id for j in b.batch_jobs(db, batch_id))  # every line once
    assert dispatch.send_next(db, batch_id, send=never) == 0
    assert all(j.enqueued_at is not None for j in b.batch_jobs(db, batch_id))


def test_a_failed_send_puts_the_lines_back(db, settings, make_key, rds):
    _, key = make_key()
    batch_id = make_batch(db, settings, key["id"], 3)

    def broker_down(_ids):
        raise ConnectionError("broker down")

    with pytest.raises(ConnectionError):
        dispatch.top_up(db, batch_id, send=broker_down)
    assert all(j.enqueued_at is None for j in b.batch_jobs(db, batch_id))
    sent: list[str] = []
    assert batche_results.sweep(db, send=sent.extend, stale_seconds=300, retention_days=30, redis_client=rds) == 0
    assert len(sent) == 3  # the sweeper tops running batches up


def test_lost_lines(db, settings, make_key, redis_client):
    secret, key = make_key()
    batch_id = make_batch(db, settings, key["id"], 6)
    redis_client.set(dispatch.DATA_SINCE_KEY, time.time() - 3 * 3600)  # this Redis has kept its data for 3 h
    # Lines waiting for the window (never sent) are not lost.
    assert dispatch.lost_lines(db, redis_client, stale_seconds=0) == []
    sent: list[str] = []
    dispatch.top_up(db, batch_id, send=sent.extend)
    ids = sorted(sent)
    # Sent an hour ago and never picked up; two of them ran lately (paced lines touch their marker).
    with session_scope(db) as session:
        session.execute(update(Job).where(Job.batch_id == batch_id).values(enqueued_at=utcnow() - timedelta(hours=1)))
        single = create_job(
            session,
            api_key=session.get(ApiKey, key["id"]),
            queue=Queue.BATCH,
            body={"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "x"}]},
        )
        single_id = single.id
        session.execute(update(Job).where(Job.id == single_id).values(created_at=utcnow() - timedelta(hours=1)))
    for job_id in ids[:2]:
        dispatch.touch(redis_client, [job_id])
    # While the queue holds messages, theirs may be among them: nothing is lost yet, and they are restamped.
    redis_client.lpush(Queue.BATCH, "someone else's message")
    assert dispatch.lost_lines(db, redis_client, stale_seconds=60) == []
    assert dispatch.lost_lines(db, redis_client, stale_seconds=60) == []
    with session_scope(db) as session:
        session.execute(update(Job).where(Job.batch_id == batch_id).values(enqueued_at=utcnow() - timedelta(hours=1)))
        session.execute(update(Job).where(Job.id == single_id).values(enqueued_at=None))
    redis_client.delete(Queue.BATCH)
    resent: list[str] = []
    assert dispatch.requeue_lost(db, redis_client, stale_seconds=60, send=resent.extend) == 5
    assert sorted(resent) == sorted(ids[2:] + [single_id])
    assert dispatch.lost_lines(db, redis_client, stale_seconds=60) == []  # restamped when re-sent
    # Lines that ended are never lost.
    end_lines(db, batch_id)
    assert dispatch.lost_lines(db, redis_client, stale_seconds=0) == [single_id]


def test_lines_sent_before_redis_lost_its_data_are_sent_again_at_once_busy_queue_or_not(
    db, settings, make_key, redis_client
):
    _, key = make_key()
    batch_id = make_batch(db, settings, key["id"], 4)
    sent: list[str] = []
    dispatch.top_up(db, batch_id, send=sent.extend)
    # Sent a second ago: within BATCH_LOST_AFTER_SECONDS, and other work keeps the queue busy.
    redis_client.lpush(Queue.BATCH, "work submitted after the restart")
    redis_client.set(dispatch.DATA_SINCE_KEY, time.time() - 3600)
    assert dispatch.lost_lines(db, redis_client, stale_seconds=60) == []  # their messages may still be queued
    # Redis restarts empty (the marker goes with its data): what was sent before cannot be in it.
    redis_client.delete(dispatch.DATA_SINCE_KEY)
    redis_client.lpush(Queue.BATCH, "work submitted after the restart")
    resent: list[str] = []
    assert dispatch.requeue_lost(db, redis_client, stale_seconds=60, send=resent.extend) == 4
    assert sorted(resent) == sorted(sent)
    # Sent again now, after the data began: from here on the ordinary rules apply.
    assert dispatch.lost_lines(db, redis_client, stale_seconds=60) == []


def test_finalized_exactly_once_when_many_try(db, settings, make_key):
    _, key = make_key()
    batch_id = make_batch(db, settings, key["id"], 30)
    assert batche_results.finalize_if_done(db, batch_id, retention_days=30) is None  # lines still queued
    end_lines(db, batch_id, failed=4)
    results: list = []
    barrier = threading.Barrier(8)

    def finalize():
        barrier.wait()
        results.append(batche_results.finalize_if_done(db, batch_id, retention_days=30))

    threads = [threading.Thread(target=finalize) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("completed") == 1 and results.count(None) == 7
    with session_scope(db) as session:
        batch = session.get(Batch, batch_id)
        assert (batch.status, batch.total, batch.completed, batch.failed) == ("completed", 30, 26, 4)
        outputs = list(session.scalars(select(StoredFile).where(StoredFile.purpose == "batch_output")))
        assert {f.id for f in outputs} == {batch.output_file_id, batch.error_file_id}
        output, errors = (
            b.parse(file_bytes(session, batch.output_file_id)),
            b.parse(file_bytes(session, batch.error_file_id)),
        )
    assert len(output) == 26 and len(errors) == 4
    assert len({x["custom_id"] for x in output + errors}) == 30


def test_a_dead_finalizer_is_replaced(db, settings, make_key):
    _, key = make_key()
    batch_id = make_batch(db, settings, key["id"], 3)
    end_lines(db, batch_id)
    old_claim = utcnow() - timedelta(hours=1)
    set_column(db, Batch, batch_id, status="finalizing", finalizing_at=old_claim)
    assert batche_results.finalize_stalled(db, stale_seconds=3600 * 2, retention_days=30) == 0
    assert batche_results.finalize_stalled(db, stale_seconds=60, retention_days=30) == 1
    # The original finalizer wakes up late: its claim no longer holds, it writes nothing.
    assert batche_results.write_results(db, batch_id, claim=old_claim, retention_days=30) is None
    with session_scope(db) as session:
        assert session.get(Batch, batch_id).status == "completed"
        assert len(list(session.scalars(select(StoredFile.id).where(StoredFile.purpose == "batch_output")))) == 1


def test_sweep_finalizes_a_batch_whose_last_worker_died(db, settings, make_key, rds):
    _, key = make_key()
    batch_id = make_batch(db, settings, key["id"], 3)
    end_lines(db, batch_id)  # ... and nobody called finalize_if_done
    assert batche_results.sweep(db, send=never, stale_seconds=300, retention_days=30, redis_client=rds) == 1
    with session_scope(db) as session:
        assert session.get(Batch, batch_id).status == "completed"


def test_retention_keeps_the_ledger(db, settings, make_key):
    _, key = make_key()
    old = utcnow() - timedelta(days=40)
    ended, running = make_batch(db, settings, key["id"], 2), make_batch(db, settings, key["id"], 2)
    end_lines(db, ended)
    batche_results.finalize_if_done(db, ended, retention_days=30)
    with session_scope(db) as session:
        lines = list(session.scalars(select(Job.id).where(Job.batch_id == running)))
        for model, ids in ((Job, [j.id for j in b.batch_jobs(db, ended)] + lines[:1]), (Batch, [ended, running])):
            session.execute(update(model).where(model.id.in_(ids)).values(created_at=old))
        session.execute(update(Job).where(Job.id == lines[0]).values(status="completed", completed_at=old))
        session.execute(update(Job).where(Job.batch_id == ended).values(completed_at=old))
        billed_job = b.batch_jobs(db, ended)[0].id
        session.add(
            UsageEntry(
                job_id=billed_job,
                api_key_id=key["id"],
                model_requested="gpt-3.5-turbo",
                outcome="completed",
                created_at=old,
            )
        )
        session.execute(update(StoredFile).values(expires_at=utcnow() - timedelta(seconds=1)))
        # The rollup: minute rows older than two days go; recent minutes and every hour stay.
        for granularity, age in (("m", timedelta(days=3)), ("m", timedelta(hours=1)), ("h", timedelta(days=3))):
            session.add(
                UsageRollup(
                    granularity=granularity,
                    bucket=utcnow() - age,
                    api_key_id=key["id"],
                    model="gpt-3.5-turbo",
                    provider="openai",
                    requests=1,
                    prompt_tokens=0,
                    completion_tokens=0,
                    cost_usd=Decimal(0),
                    latency_ms_sum=0,
                    **dict.fromkeys(LATENCY_BUCKETS, 0),
                )
            )
    counts = retention.purge(db, retention_days=30)
    # 2 inputs and the ended batch's output; one minute of the rollup.
    assert counts == {"batches": 1, "jobs": 2, "files": 3, "usage_minutes": 1, "error_minutes": 0}
    with session_scope(db) as session:
        kept = sorted(session.execute(select(UsageRollup.granularity, UsageRollup.bucket)).tuples().all())
        assert [g for g, _ in kept] == ["h", "m"]
    with session_scope(db) as session:  # their bytes went with them
        assert session.scalar(select(func.count()).select_from(FileChunk)) == 0
    with session_scope(db) as session:
        assert session.get(Batch, ended) is None and session.get(Batch, running) is not None
        assert session.get(Job, lines[0]) is not None  # its batch still runs
        (row,) = session.scalars(select(UsageEntry))
        assert row.job_id == billed_job and session.get(Job, billed_job) is None


def test_retention_never_below_a_day():
    env = {"ENCRYPTION_KEY": "ab" * 32, "ADMIN_API_KEY": "x" * 20}
    with pytest.raises(ConfigError, match="RETENTION_DAYS"):
        load_settings({**env, "RETENTION_DAYS": "0.5"})
    with pytest.raises(ConfigError, match="MAX_BATCH_LINES"):
        load_settings({**env, "MAX_BATCH_LINES": "60000"})
    assert load_settings({**env, "RETENTION_DAYS": "2"}).retention_days == 2
