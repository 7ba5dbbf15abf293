"""Batches are validated off the web thread: `validating` at once, then a worker starts the lines or fails the
batch with OpenAI's `errors`; admission of the lines, reruns after a dead worker, the sweeper, cancel, revocation."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import func, select, update

from llmproxy.batches import validation
from llmproxy.limits.queued import admit_submission
from llmproxy.limits.reservations import limit_keys
from llmproxy.storage.engine import session_scope
from llmproxy.storage.models import ApiKey, Batch, Job, UsageEntry
from llmproxy.storage.timestamps import utcnow
from tests.support import batching as b


def auth(secret):
    return {"Authorization": f"Bearer {secret}"}


def create(client, secret, content: bytes):
    created = b.create_batch(client, secret, content)
    assert created.status_code == 200, created.json
    return created.json


def getter(client, secret):
    return lambda batch_id: client.get(f"/v1/batches/{batch_id}", headers=auth(secret)).json


def jobs_of(db, batch_id: str) -> list[tuple[str, str]]:
    with session_scope(db) as session:
        rows = session.execute(select(Job.id, Job.custom_id).where(Job.batch_id == batch_id))
        return sorted((job_id, custom_id) for job_id, custom_id in rows)


def queued(rds, key_id: str) -> int:
    return rds.zcard(limit_keys(key_id).queued)


def test_validating_at_once_then_a_worker_runs_the_lines(client, make_key, upstream, worker, db, rds):
    secret, key = make_key()
    created = create(client, secret, b.file_of(5))
    assert created["status"] == "validating" and created["in_progress_at"] is None
    assert created["errors"] is None and created["request_counts"] == {"total": 0, "completed": 0, "failed": 0}
    done = b.wait_batch(getter(client, secret), created["id"])
    assert done["status"] == "completed" and done["request_counts"] == {"total": 5, "completed": 5, "failed": 0}
    assert done["in_progress_at"] >= done["created_at"]
    lines = jobs_of(db, created["id"])
    assert [job_id for job_id, _ in lines] == validation.line_ids(created["id"], 5)
    assert sorted(custom_id for _, custom_id in lines) == [f"req-{i}" for i in range(5)]
    assert queued(rds, key["id"]) == 0  # neither the batch's place while validating nor an ended line counts


def test_a_bad_file_fails_with_errors_and_stores_and_bills_nothing(client, make_key, upstream, worker, db, rds):
    secret, key = make_key(models=["gpt-3.5-turbo"])
    lines = [
        b.line("ok"),
        '{"custom_id": "broken", "method": "POST"',
        dict(b.line("url"), url="/v1/completions"),
        b.line("ok"),
        b.line("m", model="gpt-4"),
    ]
    created = create(client, secret, b.jsonl(lines))
    assert created["status"] == "validating"
    batch = b.wait_batch(getter(client, secret), created["id"])
    assert batch["status"] == "failed" and batch["failed_at"] and batch["in_progress_at"] is None
    assert batch["errors"]["object"] == "list"
    assert [(e["line"], e["code"], e["param"]) for e in batch["errors"]["data"]] == [
        (2, "invalid_json_line", None),
        (3, "invalid_url", "url"),
        (4, "duplicate_custom_id", "custom_id"),
        (5, "model_not_allowed", "body"),
    ]
    assert all(e["message"] for e in batch["errors"]["data"])
    assert jobs_of(db, created["id"]) == []
    with session_scope(db) as session:
        assert (
            session.scalar(select(func.count()).select_from(UsageEntry).where(UsageEntry.api_key_id == key["id"])) == 0
        )
    assert queued(rds, key["id"]) == 0 and upstream.chat_bodies() == []


def test_the_queued_jobs_cap_counts_the_lines_at_validation(client, make_key, upstream, worker, db, rds):
    secret, key = make_key(max_queued_jobs=3)
    # The batch holds one place while it validates (it fits), then its five lines do not.
    created = create(client, secret, b.file_of(5))
    assert created["status"] == "validating"
    batch = b.wait_batch(getter(client, secret), created["id"])
    assert batch["status"] == "failed"
    [error] = batch["errors"]["data"]
    assert (error["code"], error["param"], error["line"]) == ("rate_limit_exceeded", "queued_jobs", None)
    assert jobs_of(db, created["id"]) == [] and queued(rds, key["id"]) == 0
    # Three lines fit: the batch's own place makes way for them.
    fits = b.wait_batch(getter(client, secret), create(client, secret, b.file_of(3))["id"])
    assert fits["status"] == "completed" and fits["request_counts"]["completed"] == 3


def test_a_rerun_after_a_dead_validation_admits_its_lines_once(db, settings, make_key, rds):
    _, key = make_key(max_queued_jobs=4)
    batch_id = b.stored_batch(db, settings, key["id"], b.file_of(4))
    # A run admitted the lines and died before its commit: they count, but were never stored.
    with session_scope(db) as session:
        admit_submission(
            rds, key=session.get(ApiKey, key["id"]), job_ids=validation.line_ids(batch_id, 4), settings=settings
        )
    assert queued(rds, key["id"]) == 4
    assert validation.validate_batch(db, rds, batch_id, settings=settings) == "in_progress"
    assert queued(rds, key["id"]) == 4 and len(jobs_of(db, batch_id)) == 4
    assert validation.validate_batch(db, rds, batch_id, settings=settings) is None  # done: nothing more


def test_two_validations_at_once_store_each_line_once(db, settings, make_key, rds):
    _, key = make_key()
    batch_id = b.stored_batch(db, settings, key["id"], b.file_of(300))
    outcomes: list = []
    barrier = threading.Barrier(2)

    def run():
        barrier.wait()
        outcomes.append(validation.validate_batch(db, rds, batch_id, settings=settings))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes, key=str) == [None, "in_progress"]
    lines = jobs_of(db, batch_id)
    assert len(lines) == 300 and len({custom_id for _, custom_id in lines}) == 300
    assert queued(rds, key["id"]) == 300
    with session_scope(db) as session:
        assert session.get(Batch, batch_id).total == 300


def test_the_sweeper_resends_a_validation_nobody_runs(db, settings, make_key, rds):
    _, key = make_key()
    batch_id = b.stored_batch(db, settings, key["id"], b.file_of(2))
    assert validation.stalled_validations(db, rds, stale_seconds=60) == []  # its message may still be on its way
    with session_scope(db) as session:
        session.execute(update(Batch).where(Batch.id == batch_id).values(created_at=utcnow() - timedelta(hours=1)))
    assert validation.stalled_validations(db, rds, stale_seconds=60) == [batch_id]
    assert validation.stalled_validations(db, rds, stale_seconds=60) == []  # sent once a period, not every pass
    assert validation.validate_batch(db, rds, batch_id, settings=settings) == "in_progress"
    rds.zrem("llmproxy:batch:touched", batch_id)
    assert validation.stalled_validations(db, rds, stale_seconds=60) == []  # no longer validating


def test_cancelling_a_validating_batch_ends_it_before_any_line_exists(client, make_key, db, settings, rds):
    secret, key = make_key()
    batch_id = b.stored_batch(db, settings, key["id"], b.file_of(3))
    with session_scope(db) as session:  # the place the web gives a validating batch
        admit_submission(rds, key=session.get(ApiKey, key["id"]), job_ids=[batch_id], settings=settings)
    cancelled = client.post(f"/v1/batches/{batch_id}/cancel", headers=auth(secret)).json
    assert cancelled["status"] == "cancelled" and cancelled["cancelled_at"] and cancelled["cancelling_at"]
    assert cancelled["request_counts"] == {"total": 0, "completed": 0, "failed": 0}
    assert queued(rds, key["id"]) == 0
    assert validation.validate_batch(db, rds, batch_id, settings=settings) is None
    assert jobs_of(db, batch_id) == []
    assert client.post(f"/v1/batches/{batch_id}/cancel", headers=auth(secret)).json["status"] == "cancelled"


def test_a_key_revoked_before_validation_fails_the_batch(client, make_key, admin_headers, db, settings, rds):
    _, key = make_key()
    batch_id = b.stored_batch(db, settings, key["id"], b.file_of(2))
    assert client.delete(f"/admin/keys/{key['id']}", headers=admin_headers).status_code == 200
    assert validation.validate_batch(db, rds, batch_id, settings=settings) == "failed"
    with session_scope(db) as session:
        batch = session.get(Batch, batch_id)
        assert [e["code"] for e in batch.errors["data"]] == ["invalid_api_key"]
    assert jobs_of(db, batch_id) == []
