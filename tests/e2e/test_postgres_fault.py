"""PostgreSQL stopped (pg_ctl stop -m fast) and started again while clients send synchronous completions.

During the outage every answer is a 200 (the path needs no database) or a 503 with OpenAI's error
body: never a 500, never a hang. Once the database is back, requests succeed again within a
deadline without restarting any process, and every 200 answered is in the ledger exactly once.

Real processes on a PostgreSQL cluster and a Redis server of their own (tests/support/faults.py; the
shared services are never touched): gunicorn (web), a Celery worker, the records writer, celery beat
and the stub upstream.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest
import requests
from sqlalchemy import func, select

from llmproxy.devtools.embedded_redis import EmbeddedRedis
from llmproxy.devtools.waiting import wait_for
from llmproxy.storage.engine import make_engine, make_session_factory, session_scope
from llmproxy.storage.models import ApiKey, Job, UsageEntry
from tests.support.faults import LoopingClients, ScratchPostgres, Send, pause, prepare_database
from tests.support.processes import BeatProcess, WebProcess, WorkerProcess, WriterProcess, base_env, side_by_side

pytestmark = pytest.mark.skipif(
    not ScratchPostgres.available, reason="PostgreSQL 15's initdb/pg_ctl are not installed (/usr/lib/postgresql/15/bin)"
)

CLIENT_TIMEOUT = 20.0
OUTAGE_SECONDS = 6.0
ANSWER_SECONDS = 5.0  # the longest any answer may take: an outage is answered (503), not waited out
RECOVERY_DEADLINE = 20.0


def call(url: str, secret: str) -> Send:
    """Synchronous chat completions, one after the other."""
    headers = {"Authorization": f"Bearer {secret}"}

    def send(n: int, i: int) -> tuple[str, requests.Response]:
        content = f"pg fault {n}-{i}"
        body = {"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": content}]}
        return content, requests.post(url + "/v1/chat/completions", json=body, headers=headers, timeout=CLIENT_TIMEOUT)

    return send


def recovered(caller: LoopingClients, n: int) -> bool:
    """The last n answers were all to requests sent after the restart, and all 200."""
    last = caller.last(n)
    return len(last) == n and all(a.phase == "after" and a.status == 200 for a in last)


# How long each process keeps the configuration it read (CATALOG_TTL_SECONDS of web, worker). With the default
# 1 s every request soon needs the database (503 while it is down); with long-lived snapshots the web and the
# worker serve from what they read before and the writer keeps the records until it is back; with the web's
# long-lived and the worker's off, the web admits jobs the worker cannot look up (503 from the worker).
SNAPSHOTS = {"default": ("1", "1"), "warm": ("120", "120"), "worker-cold": ("120", "0")}


@pytest.mark.parametrize("snapshots", list(SNAPSHOTS))
def test_sync_traffic_through_a_postgres_restart(stub, snapshots):
    web_ttl, worker_ttl = SNAPSHOTS[snapshots]
    pg, server = ScratchPostgres(), EmbeddedRedis()
    engine = None
    started: list = []
    caller: LoopingClients | None = None
    try:
        pg.start()
        env = base_env()
        gateway = prepare_database(pg.url, stub, encryption_key=env["ENCRYPTION_KEY"])
        env.update(DATABASE_URL=pg.url, REDIS_URL=server.url, CATALOG_TTL_SECONDS=web_ttl)
        stub.reset()
        stub.latency = 0.05
        engine = make_engine(gateway.url)
        db = make_session_factory(engine)
        started += [
            WebProcess(env, workers=2),
            WorkerProcess({**env, "CATALOG_TTL_SECONDS": worker_ttl}, concurrency=8),
            WriterProcess(env),
            BeatProcess(env),
        ]
        side_by_side(lambda p: p.start(), started)
        web = started[0]
        caller = LoopingClients(call(web.url, gateway.secret), threads=3, join_seconds=CLIENT_TIMEOUT + 10)
        caller.start()
        wait_for(lambda: len(caller.with_status(200)) >= 10, timeout=30, message="10 answers before the outage")

        pg.stop()
        caller.phase = "outage"
        pause(OUTAGE_SECONDS)
        pg.start()
        restarted = time.monotonic()
        caller.phase = "after"
        # No process is restarted: the web, worker and writer must find the database again by themselves.
        wait_for(
            lambda: recovered(caller, 20),
            timeout=RECOVERY_DEADLINE,
            message="20 answers in a row 200 after the restart",
        )
        caller.stop()
        assert not caller.errors, caller.errors
        assert min(a.sent for a in caller.with_status(200, "after")) - restarted < 5, (
            "no request succeeded soon after the restart"
        )

        for a in caller.answers:
            assert a.took < ANSWER_SECONDS, (a.phase, a.status, round(a.took, 1), a.text)
            if a.status != 200:
                assert a.status == 503, (a.phase, a.status, a.text)
                assert a.body is not None and set(a.body["error"]) >= {"message", "type", "code"}, a.text
        during = Counter(a.status for a in caller.answers if a.phase == "outage")
        if snapshots == "warm":
            assert during[200] >= 10, during  # served from the snapshots, stored by the writer once it is back
        else:
            assert during[503] >= 1, during

        served = {a.request_id for a in caller.with_status(200)}
        assert None not in served and len(served) == len(caller.with_status(200))

        def recorded() -> bool:
            with session_scope(db) as s:
                return s.scalar(
                    select(func.count()).select_from(UsageEntry).where(UsageEntry.job_id.in_(served))
                ) == len(served)

        wait_for(recorded, timeout=30, interval=0.2, message="every 200 to be in the ledger")
        with session_scope(db) as s:
            ledger = Counter(s.scalars(select(UsageEntry.job_id).where(UsageEntry.api_key_id == gateway.key_id)).all())
            jobs = dict(s.execute(select(Job.id, Job.status).where(Job.api_key_id == gateway.key_id)).all())
            spend = s.scalar(select(ApiKey.spend_usd).where(ApiKey.id == gateway.key_id))
            total = s.scalar(select(func.sum(UsageEntry.cost_usd)).where(UsageEntry.api_key_id == gateway.key_id))
        # Every 200 billed once, nothing billed that was not answered 200, and the key's spend is the sum.
        assert ledger == Counter(dict.fromkeys(served, 1))
        assert {jobs.get(i) for i in served} == {"completed"}
        assert spend == total
    finally:
        if caller is not None:
            caller.stopping.set()
        side_by_side(lambda p: p.stop(), started)
        if engine is not None:
            engine.dispose()
        server.close()
        pg.close()
