"""A worker killed (SIGKILL) in the middle of validating a batch: the batch sweeper has it validated again, and
every line is stored, run and billed exactly once.

Real processes on a Redis database of their own (see conftest.py): gunicorn (web), a Celery worker, the
records writer, then celery beat (the sweepers) and a second worker. The kill point is reached by holding the
validation where it must stop, never by timing: it has read the file and admitted the lines (they count among
the key's queued jobs) and waits on a database lock before it can store them.
"""

from __future__ import annotations

import redis as redis_lib
import requests
from sqlalchemy import func, select

from llmproxy.batches import validation
from llmproxy.devtools.stub_responses import Ok
from llmproxy.devtools.waiting import wait_for
from llmproxy.limits.reservations import limit_keys
from llmproxy.storage.engine import session_scope
from llmproxy.storage.models import Batch, Job
from tests.support import batching
from tests.support.databases import RowLock
from tests.support.processes import BeatProcess, WebProcess, WorkerProcess, WriterProcess, side_by_side

LINES = 20


def test_a_validation_killed_midway_is_taken_up_again(e2e_env, make_key, upstream, db):
    env = {**e2e_env, "BATCH_LOST_AFTER_SECONDS": "2"}
    secret, key = make_key(name="validation-crash")
    upstream.script("gpt-3.5-turbo", *[Ok()] * LINES)
    client = redis_lib.Redis.from_url(env["REDIS_URL"])
    queued = limit_keys(key["id"]).queued
    web, writer = WebProcess(env, workers=1), WriterProcess(env)
    first, second, beat = WorkerProcess(env, concurrency=4), WorkerProcess(env, concurrency=4), BeatProcess(env)
    started = [web, writer]
    lock: RowLock | None = None
    try:
        side_by_side(lambda p: p.start(), started)
        # No worker runs yet: the batch waits `validating`, its task in the queue, while the lock is taken.
        batch = batching.submit(web.url, secret, batching.file_of(LINES))
        assert batch["status"] == "validating"
        lock = RowLock(db, Batch, batch["id"])
        line_ids = validation.line_ids(batch["id"], LINES)
        started.append(first)
        first.start()

        def admitted() -> bool:
            # The lines count among the key's queued jobs, the batch's own place is gone: it waits to store them.
            return client.zscore(queued, batch["id"]) is None and client.zmscore(queued, line_ids).count(None) == 0

        wait_for(admitted, timeout=30, message="the validation to admit the lines")
        first.kill()
        lock.release()
        assert batching.batch_jobs(db, batch["id"]) == []  # nothing stored by the dead run
        started += [second, beat]
        side_by_side(lambda p: p.start(), [second, beat])

        headers = {"Authorization": f"Bearer {secret}"}
        done = batching.wait_batch(
            lambda i: requests.get(f"{web.url}/v1/batches/{i}", headers=headers, timeout=10).json(),
            batch["id"],
            timeout=60,
        )
        assert done["status"] == "completed", done
        assert "re-sent the validation of 1 batches" in second.output()  # the sweeper, not a redelivery
        assert done["request_counts"] == {"total": LINES, "completed": LINES, "failed": 0}
        output = batching.parse(
            requests.get(f"{web.url}/v1/files/{done['output_file_id']}/content", headers=headers, timeout=10).content
        )
        batching.check_results(done, output, [], {f"req-{i}" for i in range(LINES)})  # each custom_id once
        assert sorted(j.id for j in batching.batch_jobs(db, batch["id"])) == line_ids
        billed = batching.billed(db, batch["id"])
        assert len(billed) == LINES and set(billed.values()) == {1}
        with session_scope(db) as session:
            assert session.scalar(select(func.count()).select_from(Job).where(Job.api_key_id == key["id"])) == LINES
        wait_for(lambda: client.zcard(queued) == 0, timeout=10, message="no line left counted as queued")
    finally:
        if lock is not None:
            lock.release()
        side_by_side(lambda p: p.stop(), started)
        client.close()
