"""Redis killed (SIGKILL, no persistence) and restarted while clients submit async jobs and a batch.

Every job answered 202 still completes exactly once (one ledger row each, the key's spend their sum),
a job accepted after the restart reaches the upstream once, and nothing stays queued. A submission
made while Redis is down is refused with OpenAI's error body (503), never a 500 or a 202 that is lost.

Real processes on a Redis server and a SQLite database of their own (tests/support/faults.py; the
shared services are never touched): gunicorn (web), a Celery worker, the records writer, celery
beat (the sweepers that re-send what Redis lost) and the stub upstream.
"""

from __future__ import annotations

import time
from collections import Counter
from decimal import Decimal

import redis as redis_lib
import requests
from sqlalchemy import func, select

from llmproxy.devtools.embedded_redis import EmbeddedRedis
from llmproxy.devtools.waiting import wait_for
from llmproxy.jobs.queues import Queue
from llmproxy.storage.engine import make_engine, make_session_factory, session_scope
from llmproxy.storage.models import ApiKey, Batch, Job, UsageEntry
from tests.support import batching
from tests.support.faults import LoopingClients, Send, pause, prepare_database, sqlite_url
from tests.support.processes import BeatProcess, WebProcess, WorkerProcess, WriterProcess, base_env, side_by_side

BATCH_LINES = 6
OUTAGE_SECONDS = 3.0


def submit(url: str, secret: str) -> Send:
    """Async submissions in turn through POST /v1/jobs and `Prefer: respond-async`."""
    headers = {"Authorization": f"Bearer {secret}"}

    def send(n: int, i: int) -> tuple[str, requests.Response]:
        content = f"redis fault {n}-{i}"
        messages = [{"role": "user", "content": content}]
        if i % 2:
            body = {"body": {"model": "gpt-3.5-turbo", "messages": messages}}
            return content, requests.post(url + "/v1/jobs", json=body, headers=headers, timeout=30)
        body = {"model": "gpt-3.5-turbo", "messages": messages}
        prefer = {**headers, "Prefer": "respond-async"}
        return content, requests.post(url + "/v1/chat/completions", json=body, headers=prefer, timeout=30)

    return send


def _upload(url: str, secret: str, prefix: str) -> str:
    """Upload a batch input file; its id."""
    up = requests.post(
        url + "/v1/files",
        headers={"Authorization": f"Bearer {secret}"},
        data={"purpose": "batch"},
        files={"file": ("in.jsonl", batching.file_of(BATCH_LINES, prefix=prefix))},
        timeout=30,
    )
    assert up.status_code == 200, up.text
    return up.json()["id"]


def _create_batch(url: str, secret: str, file_id: str) -> requests.Response:
    """POST /v1/batches for an uploaded file, as it is answered."""
    body = {"input_file_id": file_id, "endpoint": "/v1/chat/completions", "completion_window": "24h"}
    return requests.post(url + "/v1/batches", headers={"Authorization": f"Bearer {secret}"}, json=body, timeout=30)


def _counts(db, key_id: str) -> tuple[dict[str, str], Counter, Decimal]:
    """Every job of the key (id -> status), ledger rows per job, and the key's recorded spend."""
    with session_scope(db) as s:
        jobs = dict(s.execute(select(Job.id, Job.status).where(Job.api_key_id == key_id)).all())
        ledger = Counter(s.scalars(select(UsageEntry.job_id).where(UsageEntry.api_key_id == key_id)).all())
        spend = s.scalar(select(ApiKey.spend_usd).where(ApiKey.id == key_id))
        total = s.scalar(select(func.coalesce(func.sum(UsageEntry.cost_usd), 0)).where(UsageEntry.api_key_id == key_id))
    assert spend == total, f"the key's spend {spend} is not its ledger's sum {total}"
    return jobs, ledger, spend


def test_accepted_jobs_survive_a_redis_restart(stub):
    server, env = EmbeddedRedis(), base_env()
    gateway = prepare_database(sqlite_url(), stub, encryption_key=env["ENCRYPTION_KEY"])
    # A job whose message died with Redis is looked for after 3 s instead of a minute.
    env.update(DATABASE_URL=gateway.url, REDIS_URL=server.url, BATCH_LOST_AFTER_SECONDS="3")
    stub.reset()
    stub.latency = 0.3  # calls take a while: the kill finds jobs queued, running and ended but not yet stored
    engine = make_engine(gateway.url)
    db = make_session_factory(engine)
    web = WebProcess(env, workers=2)
    started = [web, WorkerProcess(env, concurrency=4), WriterProcess(env), BeatProcess(env)]
    submitter = LoopingClients(submit(web.url, gateway.secret), threads=2, join_seconds=60)
    try:
        side_by_side(lambda p: p.start(), started)
        batch = batching.submit(web.url, gateway.secret, batching.file_of(BATCH_LINES, prefix="fault"))
        outage_file = _upload(web.url, gateway.secret, "outage")  # its batch is created while Redis is down
        submitter.start()
        wait_for(lambda: len(submitter.with_status(202)) >= 12, timeout=30, message="12 jobs accepted")
        wait_for(
            lambda: len(stub.chat_bodies()) >= 4 and batching.batch_jobs(db, batch["id"]),
            timeout=30,
            message="work in flight and the batch's lines stored",
        )

        server.kill()
        submitter.phase = "outage"
        killed = time.monotonic()
        during = _create_batch(web.url, gateway.secret, outage_file)
        pause(max(0.0, OUTAGE_SECONDS - (time.monotonic() - killed)))
        server.restart()
        submitter.phase = "after"
        # The batch refused while Redis was down: 503, nothing stored; sent again now, it is accepted.
        assert during.status_code == 503 and during.json()["error"]["code"] == "dependency_unavailable", during.text
        with session_scope(db) as s:
            assert s.scalars(select(Batch.id)).all() == [batch["id"]]
        again = _create_batch(web.url, gateway.secret, outage_file)
        assert again.status_code == 200, again.text
        wait_for(
            lambda: len(submitter.with_status(202, "after")) >= 8,
            timeout=30,
            message="8 jobs accepted after the restart",
        )
        submitter.stop()
        assert not submitter.errors, submitter.errors

        # Refused submissions: OpenAI's error body, 503; never a 500 or an HTML page.
        refused = [s for s in submitter.answers if s.status != 202]
        for sub in refused:
            assert sub.status == 503, (sub.status, sub.text)
            assert sub.body is not None and set(sub.body["error"]) >= {"message", "type", "code"}, sub.text
        assert refused, "no submission was refused while Redis was down"

        accepted = {sub.body["id"]: sub for sub in submitter.with_status(202)}
        headers = {"Authorization": f"Bearer {gateway.secret}"}
        lines: set[str] = set()
        for batch_id in (batch["id"], again.json()["id"]):
            done = batching.wait_batch(
                lambda i: requests.get(f"{web.url}/v1/batches/{i}", headers=headers, timeout=10).json(),
                batch_id,
                timeout=45,
            )
            assert done["status"] == "completed", done
            assert done["request_counts"] == {"total": BATCH_LINES, "completed": BATCH_LINES, "failed": 0}
            lines |= {j.id for j in batching.batch_jobs(db, batch_id)}

        def all_recorded() -> bool:
            jobs, ledger, _spend = _counts(db, gateway.key_id)
            return all(jobs.get(i) == "completed" and ledger[i] for i in [*accepted, *lines])

        wait_for(all_recorded, timeout=45, interval=0.2, message="every accepted job to be completed and billed")
        jobs, ledger, spend = _counts(db, gateway.key_id)
        # Exactly the accepted jobs and the batch's lines exist (a refused submission left no row), each
        # completed and billed once.
        assert set(jobs) == set(accepted) | lines
        assert set(jobs.values()) == {"completed"}
        assert ledger == Counter(dict.fromkeys(jobs, 1))
        assert spend > 0

        served = Counter(b["messages"][0]["content"] for b in stub.chat_bodies("gpt-3.5-turbo"))
        for sub in accepted.values():
            assert served[sub.label] >= 1, f"{sub.label} never reached the upstream"
            if sub.phase == "after":  # what Redis never lost runs once; earlier jobs may have run again
                assert served[sub.label] == 1, (sub.label, served[sub.label])
        assert all(served[f"request fault-{i}"] >= 1 for i in range(BATCH_LINES))
        assert all(served[f"request outage-{i}"] == 1 for i in range(BATCH_LINES))  # sent after the restart: once

        # Nothing is left waiting: no queued message, no job row or batch still running.
        client = redis_lib.Redis.from_url(server.url)
        try:
            assert client.llen(Queue.BATCH) == 0 and client.llen(Queue.INTERACTIVE) == 0
        finally:
            client.close()
        with session_scope(db) as s:
            assert set(s.scalars(select(Batch.status)).all()) == {"completed"}
    finally:
        submitter.stopping.set()
        side_by_side(lambda p: p.stop(), started)
        server.close()
        engine.dispose()
