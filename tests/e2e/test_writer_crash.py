"""The writer killed (SIGKILL) before and after its commit, the worker killed after it answered:
every served job (synchronous, or a batch line) is stored once, ledger = key total = cost
recomputed from tokens × prices, and a batch whose records were replayed is finalized.

Real processes on a Redis database of their own (see conftest.py): gunicorn (web), a Celery
worker, writers and the stub upstream. The kill points are reached by holding the writer where
it must stop — never by timing: a database lock it waits on before its commit, or Redis paused
for writes after it (the commit is visible, the acknowledgement cannot be sent).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal

import pytest
import redis as redis_lib
import requests
from sqlalchemy import func, select

from llmproxy.devtools.stub_responses import Ok
from llmproxy.devtools.waiting import wait_for
from llmproxy.jobs import live
from llmproxy.jobs.records import RECORDS_STREAM
from llmproxy.jobs.writer import GROUP
from llmproxy.storage.engine import session_scope
from llmproxy.storage.models import ApiKey, Batch, Job, UsageEntry
from tests.support import batching, records
from tests.support.databases import RowLock
from tests.support.processes import WebProcess, WorkerProcess, WriterProcess, side_by_side

REQUESTS = 8
PROMPT, COMPLETION = 30, 7


def _serve(web: WebProcess, secret: str, n: int = REQUESTS) -> list[str]:
    """n synchronous requests, all answered 200; their job ids."""

    def call(i: int) -> str:
        r = requests.post(
            web.url + "/v1/chat/completions",
            timeout=60,
            json={"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": f"crash {i}"}]},
            headers={"Authorization": f"Bearer {secret}"},
        )
        assert r.status_code == 200, r.text
        return r.headers["x-request-id"]

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(call, range(n)))


def _stored(db, job_ids: list[str]) -> int:
    """How many of these jobs the writer has stored (a batch line's row exists before, as queued)."""
    with session_scope(db) as s:
        return s.scalar(select(func.count()).select_from(Job).where(Job.id.in_(job_ids), Job.status.in_(records.FINAL)))


def _assert_billed_once(db, key_id: str, job_ids: list[str]) -> None:
    wait_for(lambda: _stored(db, job_ids) == len(job_ids), timeout=60, message="every job to be stored")
    with session_scope(db) as s:
        rows = s.scalars(select(UsageEntry).where(UsageEntry.api_key_id == key_id)).all()
        spend = s.scalar(select(ApiKey.spend_usd).where(ApiKey.id == key_id))
        jobs = s.scalars(select(Job).where(Job.api_key_id == key_id)).all()
    assert sorted(r.job_id for r in rows) == sorted(job_ids)  # one ledger row per served job
    assert {j.status for j in jobs} == {"completed"} and len(jobs) == len(job_ids)
    one = records.cost(PROMPT, COMPLETION, "1.5", "2")
    assert all(r.cost_usd == one for r in rows)
    assert spend == sum((r.cost_usd for r in rows), Decimal(0)) == one * len(job_ids)


def _assert_batch_completed(db, job_ids: list[str]) -> None:
    with session_scope(db) as s:
        batch_id = s.scalar(select(Job.batch_id).where(Job.id == job_ids[0]))

    def completed() -> Batch | None:
        with session_scope(db) as s:
            batch = s.get(Batch, batch_id)
            return batch if batch.status == "completed" else None

    batch = wait_for(completed, timeout=60, message="the batch to be finalized")
    assert (batch.total, batch.completed, batch.failed) == (REQUESTS, REQUESTS, 0)


def _pending(client: redis_lib.Redis) -> int:
    try:
        return int(client.xpending(RECORDS_STREAM, GROUP)["pending"])
    except redis_lib.ResponseError:  # no group yet
        return 0


@dataclass
class _Held:
    """A writer that has read records and waits on the lock inside its transaction."""

    key_id: str
    job_ids: list[str]
    client: redis_lib.Redis
    lock: RowLock
    writer: WriterProcess
    started: list


Submit = Callable[[WebProcess, str], list[str]]


def _batch_of_lines(db, client: redis_lib.Redis) -> Submit:
    """Submits a batch of REQUESTS lines and waits until every line has ended (in Redis); their job ids."""

    def submit(web: WebProcess, secret: str) -> list[str]:
        batch = batching.submit(web.url, secret, batching.file_of(REQUESTS))
        # A worker validates the batch, then stores all its lines at once.
        ids = wait_for(
            lambda: [j.id for j in batching.batch_jobs(db, batch["id"])], timeout=30, message="the batch's lines"
        )
        wait_for(
            lambda: all((j := live.read(client, i)) is not None and j.status == "completed" for i in ids),
            timeout=60,
            message="every line to end",
        )
        return ids

    return submit


@contextmanager
def _writer_held_before_commit(
    e2e_env, make_key, upstream, db, name: str, submit: Submit | None = None
) -> Iterator[_Held]:
    """Web and worker serve requests (synchronous ones, or what `submit` sends) with no writer running; then a
    writer starts, reads their records and is held before its commit."""
    secret, key = make_key(name=name)
    upstream.script("gpt-3.5-turbo", *[Ok(prompt_tokens=PROMPT, completion_tokens=COMPLETION)] * REQUESTS)
    writer = WriterProcess(e2e_env)
    started = [WorkerProcess(e2e_env, concurrency=4), web := WebProcess(e2e_env, workers=1)]
    client = redis_lib.Redis.from_url(e2e_env["REDIS_URL"])
    lock: RowLock | None = None
    try:
        side_by_side(lambda p: p.start(), started)
        job_ids = (submit or _serve)(web, secret)  # served while nothing is stored
        lock = RowLock(db, ApiKey, key["id"])
        started.append(writer)
        writer.start()
        # The writer has read the records and cannot commit.
        wait_for(lambda: _pending(client) >= 1, timeout=30, message="the writer to hold records")
        yield _Held(key["id"], job_ids, client, lock, writer, started)
    finally:
        if lock is not None:
            lock.release()
        side_by_side(lambda p: p.stop(), started)
        client.close()


@pytest.mark.parametrize("kind", ["sync", "batch"])
def test_writer_killed_before_its_commit(e2e_env, make_key, upstream, db, kind):
    submit = _batch_of_lines(db, redis_lib.Redis.from_url(e2e_env["REDIS_URL"])) if kind == "batch" else None
    with _writer_held_before_commit(e2e_env, make_key, upstream, db, f"writer-before-commit-{kind}", submit) as held:
        held.writer.kill()
        held.lock.release()
        assert _stored(db, held.job_ids) == 0
        second = WriterProcess(e2e_env)
        held.started.append(second)
        second.start()  # takes the dead writer's records over once they have been idle 10 s
        _assert_billed_once(db, held.key_id, held.job_ids)
        wait_for(lambda: _pending(held.client) == 0, timeout=30, message="the records to be acknowledged")
        if kind == "batch":
            _assert_batch_completed(db, held.job_ids)


@pytest.mark.parametrize("kind", ["sync", "batch"])
def test_writer_killed_after_its_commit(e2e_env, make_key, upstream, db, kind):
    submit = _batch_of_lines(db, redis_lib.Redis.from_url(e2e_env["REDIS_URL"])) if kind == "batch" else None
    with _writer_held_before_commit(e2e_env, make_key, upstream, db, f"writer-after-commit-{kind}", submit) as held:
        client = held.client
        reading = _pending(client)
        # Redis refuses writes for a while, then the database lets the writer go: it commits and
        # hangs sending its acknowledgement. Kill it there.
        client.execute_command("CLIENT", "PAUSE", "30000", "WRITE")
        try:
            held.lock.release()
            wait_for(lambda: _stored(db, held.job_ids) == reading, timeout=25, message="the writer's commit")
            held.writer.kill()
        finally:
            client.execute_command("CLIENT", "UNPAUSE")
        assert _pending(client) == reading  # committed, never acknowledged
        second = WriterProcess(e2e_env)
        held.started.append(second)
        second.start()  # takes them over after 10 s idle and stores them again: nothing may change
        wait_for(lambda: _pending(client) == 0, timeout=60, message="the records to be stored again")
        _assert_billed_once(db, held.key_id, held.job_ids)
        if kind == "batch":
            # The writer that stored them died before sending the batch's finalization; its successor's
            # replay (which stores nothing twice) sends it.
            _assert_batch_completed(db, held.job_ids)


def test_worker_killed_after_it_answered(e2e_env, make_key, upstream, db):
    secret, key = make_key(name="worker-after-answer")
    upstream.script("gpt-3.5-turbo", *[Ok(prompt_tokens=PROMPT, completion_tokens=COMPLETION)] * (REQUESTS + 4))
    worker, web, writer = WorkerProcess(e2e_env, concurrency=4), WebProcess(e2e_env, workers=1), WriterProcess(e2e_env)
    second = WorkerProcess(e2e_env, concurrency=4)
    started = [worker, web, writer]
    try:
        side_by_side(lambda p: p.start(), started)
        job_ids = _serve(web, secret)
        worker.kill()  # right after the answers: messages may still be unacknowledged
        started.append(second)
        second.start()
        job_ids += _serve(web, secret, 2)  # the new worker serves; redelivered tasks change nothing
        _assert_billed_once(db, key["id"], job_ids)
    finally:
        side_by_side(lambda p: p.stop(), started)
