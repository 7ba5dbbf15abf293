"""A batch whose worker is killed (SIGKILL) halfway: it still completes, no line is lost, none is billed twice.

Real processes on a Redis database of their own (see conftest.py): gunicorn (web), celery beat (the
sweepers), the records writer, one Celery worker killed with lines in flight, then a second one. The same batch as
tests/integration/batches/test_batches.py: 2,000 lines, one upstream call in ten failing with 429 or 500
(retried), one in fifty with 400 (that line fails and goes to the error file).
"""

from __future__ import annotations

from decimal import Decimal

import requests
from sqlalchemy import func, select

from llmproxy.devtools.stub_responses import Fail, Ok
from llmproxy.devtools.waiting import wait_for
from llmproxy.storage.engine import session_scope
from llmproxy.storage.models import Job, UsageEntry
from tests.support import batching, records
from tests.support.processes import BeatProcess, WebProcess, WorkerProcess, WriterProcess, side_by_side

LINES = 2000


def ended_lines(session_factory, batch_id: str) -> int:
    with session_scope(session_factory) as session:
        return session.scalar(
            select(func.count())
            .select_from(Job)
            .where(Job.batch_id == batch_id, Job.status.in_(("completed", "failed")))
        )


def test_batch_survives_a_killed_worker(e2e_env, make_key, upstream, db):
    # Lost lines are looked for after 5 s instead of 5 min, so the test need not wait for Redis's
    # visibility timeout to give the dead worker's reserved messages back.
    env = {**e2e_env, "BATCH_LOST_AFTER_SECONDS": "5"}
    secret, key = make_key(name="batch-crash")
    upstream.latency = 0.05  # every call takes a while: the kill finds lines in flight
    script = [
        Fail(429, retry_after=0) if i % 20 == 0 else Fail(500) if i % 20 == 10 else Fail(400) if i % 50 == 25 else Ok()
        for i in range(LINES)
    ]
    upstream.script("gpt-3.5-turbo", *script)
    first, beat, web = WorkerProcess(env, concurrency=8), BeatProcess(env), WebProcess(env, workers=1)
    second, writer = WorkerProcess(env, concurrency=8), WriterProcess(env)
    started = [first, beat, web, writer]
    try:
        side_by_side(lambda p: p.start(), started)
        batch = batching.submit(web.url, secret, batching.file_of(LINES))
        assert batch["status"] == "validating"  # a worker checks the lines, then they run
        wait_for(
            lambda: ended_lines(db, batch["id"]) >= LINES // 2,
            timeout=60,
            interval=0.05,
            message="half the lines to end",
        )
        first.kill()
        killed_at = ended_lines(db, batch["id"])
        assert killed_at < LINES, "the batch ended before the kill; the test proves nothing"

        started.append(second)
        second.start()
        headers = {"Authorization": f"Bearer {secret}"}
        done = batching.wait_batch(
            lambda i: requests.get(f"{web.url}/v1/batches/{i}", headers=headers, timeout=10).json(),
            batch["id"],
            timeout=240,
        )
        assert done["status"] == "completed", done
        counts = done["request_counts"]
        assert counts["total"] == LINES and counts["completed"] + counts["failed"] == LINES

        def download(file_id):
            return batching.parse(
                requests.get(f"{web.url}/v1/files/{file_id}/content", headers=headers, timeout=30).content
            )

        output, errors = download(done["output_file_id"]), download(done["error_file_id"])
        batching.check_results(done, output, errors, {f"req-{i}" for i in range(LINES)})  # each id exactly once
        assert {x["response"]["status_code"] for x in errors} == {400}  # only the unretried 400s failed

        lines = batching.batch_jobs(db, batch["id"])
        assert any(j.run_count >= 2 for j in lines), "no line was running when the worker died"
        billed = batching.billed(db, batch["id"])
        assert len(billed) == len(output) and set(billed.values()) == {1}  # each served line billed once
        with session_scope(db) as session:
            spent = session.scalar(select(func.sum(UsageEntry.cost_usd)).where(UsageEntry.api_key_id == key["id"]))
        assert records.key_spend(db, key["id"]) == spent == sum((j.cost_usd or Decimal(0) for j in lines), Decimal(0))
        assert len(upstream.chat_bodies()) >= LINES
    finally:
        for process in started:
            process.stop()
