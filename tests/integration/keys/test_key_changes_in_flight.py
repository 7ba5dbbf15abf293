"""A key's revocation or new allowed models reach its queued and running work; fallbacks respect allowed models."""

from __future__ import annotations

import json
import time

import requests

from llmproxy.catalog.snapshots import Snapshots
from llmproxy.devtools.stub_responses import Fail, Ok
from llmproxy.devtools.waiting import wait_for
from llmproxy.ids import new_job_id
from llmproxy.jobs import live
from llmproxy.jobs.execution import execute_job
from llmproxy.jobs.live_job import LiveJob
from tests.support import records
from tests.support.cli import cli

MSG = [{"role": "user", "content": "hello there"}]
BODY = {"model": "gpt-3.5-turbo", "messages": MSG}
LONG = " ".join(f"w{i}" for i in range(150))  # 0.2 s a chunk: ~30 s if read to the end
DEADLINE = 2.0  # how soon a change must reach work in flight


def auth(secret):
    return {"Authorization": f"Bearer {secret}"}


def open_stream(live_url, secret, model="gpt-3.5-turbo"):
    """A stream whose first chunk arrived; returns (response, its line iterator, job id)."""
    response = requests.post(
        live_url + "/v1/chat/completions",
        json={**BODY, "model": model, "stream": True},
        headers=auth(secret),
        stream=True,
        timeout=30,
    )
    assert response.status_code == 200, response.text
    lines = (line for line in response.iter_lines() if line)
    assert next(lines).startswith(b"data: ")
    return response, lines, response.headers["x-request-id"]


def queued_job(client, secret, model="gpt-3.5-turbo"):
    """A job that waits for its key's capacity (the key's one request a minute is spent); returns its id."""
    created = client.post("/v1/jobs", json={"body": {**BODY, "model": model}}, headers=auth(secret))
    assert created.status_code == 202, created.json
    return created.json["id"]


def end_of(rds, db, job_id):
    """The job once it has ended: its live state, or its row once the writer stored it (the live copy then shrinks)."""
    for job in (live.read(rds, job_id), records.job(db, job_id)):
        if job is not None and job.status in records.FINAL:
            return job
    return None


def last_event(lines) -> dict:
    events = [line[len(b"data: ") :] for line in lines]
    assert b"[DONE]" not in events
    return json.loads(events[-1])


def test_revocation_ends_running_and_queued_work_within_two_seconds(
    client, live, make_key, admin_headers, upstream, worker, rds, db
):
    secret, key = make_key(name="revoked-midway", rpm_limit=1)
    upstream.script("gpt-3.5-turbo", Ok(content=LONG, chunk_delay=0.2))
    stream, lines, running = open_stream(live, secret)  # running, and it took the key's one request a minute
    queued = queued_job(client, secret)
    assert records.job(db, queued).status == "queued"

    assert client.delete(f"/admin/keys/{key['id']}", headers=admin_headers).status_code == 200
    revoked_at = time.monotonic()
    ended = wait_for(lambda: end_of(rds, db, running), timeout=DEADLINE, message="the running stream to stop")
    failed = wait_for(
        lambda: (row := records.job(db, queued)).status != "queued" and row,
        timeout=DEADLINE - (time.monotonic() - revoked_at),
        message="the queued job to fail",
    )
    assert (ended.status, ended.error_status, ended.error["code"]) == ("failed", 401, "invalid_api_key")
    assert (failed.status, failed.error_status, failed.error["code"]) == ("failed", 401, "invalid_api_key")

    # The stream ends with the error event; only what it produced is billed; the queued job never ran.
    assert last_event(lines)["error"]["code"] == "invalid_api_key"
    stream.close()
    row = records.recorded_ledger(db, running)
    assert 0 < row.completion_tokens < len(LONG.split()) and row.cost_usd > 0
    assert records.recorded_job(db, running).cost_usd == row.cost_usd
    assert records.ledger(db, queued) == []
    assert len(upstream.chat_bodies()) == 1


def test_a_queued_synchronous_job_of_a_revoked_key_fails_unsent(
    client, make_key, admin_headers, upstream, rds, db, settings
):
    secret, key = make_key(name="revoked-queued")
    # The web admitted and queued it just before the revocation; a worker claims it just after.
    job = LiveJob(new_job_id(), key["id"], "gpt-3.5-turbo", "interactive", BODY, created_at_ms=int(time.time() * 1000))
    live.create(rds, job, lease_seconds=30)
    assert client.delete(f"/admin/keys/{key['id']}", headers=admin_headers).status_code == 200

    status = execute_job(job.id, session_factory=db, redis_client=rds, settings=settings, queue="interactive",
                         snapshots=Snapshots(settings.catalog_ttl_seconds))  # fmt: skip
    assert status == "failed"
    ended = wait_for(lambda: end_of(rds, db, job.id), timeout=5, message="the job's end")
    assert (ended.error_status, ended.error["code"], ended.attempts) == (401, "invalid_api_key", [])
    assert upstream.chat_bodies() == []
    assert records.ledger(db, job.id) == []


def test_narrowed_models_stop_running_and_queued_work_of_the_others(
    client, live, make_key, admin_headers, upstream, worker, rds, db
):
    secret, key = make_key(name="narrowed", rpm_limit=1, models=["gpt-3.5-turbo", "gpt-4"])
    upstream.script("gpt-3.5-turbo", Ok(content=LONG, chunk_delay=0.2))
    stream, lines, running = open_stream(live, secret)
    queued = queued_job(client, secret)
    still_allowed = queued_job(client, secret, model="gpt-4")

    patched = client.patch(f"/admin/keys/{key['id']}", json={"models": ["gpt-4"]}, headers=admin_headers)
    assert patched.status_code == 200
    changed_at = time.monotonic()
    ended = wait_for(lambda: end_of(rds, db, running), timeout=DEADLINE, message="the running stream to stop")
    failed = wait_for(
        lambda: (row := records.job(db, queued)).status != "queued" and row,
        timeout=DEADLINE - (time.monotonic() - changed_at),
        message="the queued job to fail",
    )
    for job in (ended, failed):
        assert (job.status, job.error_status, job.error["code"]) == ("failed", 403, "model_not_allowed")
    assert last_event(lines)["error"]["code"] == "model_not_allowed"
    stream.close()
    assert records.job(db, still_allowed).status == "queued"  # its model is still allowed: it waits its turn
    assert records.recorded_ledger(db, running).completion_tokens < len(LONG.split())


def test_a_fallback_chain_skips_models_the_key_may_not_use(client, make_key, upstream, worker, db):
    narrow, _ = make_key(name="narrow", models=["gpt-3.5-turbo"])
    wide, _ = make_key(name="wide")
    failing = [Fail(500)] * 3  # the first try and both retries
    upstream.script("gpt-3.5-turbo", *failing)

    r = client.post("/v1/chat/completions", json=BODY, headers=auth(narrow))
    assert r.status_code == 502 and r.json["error"]["code"] == "all_providers_failed"
    job = records.recorded_job(db, r.headers["x-request-id"])
    assert {a["model"] for a in job.attempts} == {"gpt-3.5-turbo"}
    assert upstream.chat_bodies("mistral-tiny") == []

    # The same failures with a key that may use the fallback: it serves the request.
    upstream.script("gpt-3.5-turbo", *failing)
    served = client.post("/v1/chat/completions", json=BODY, headers=auth(wide))
    assert served.status_code == 200 and served.headers["x-llmproxy-model"] == "mistral-tiny"


def test_the_cli_sets_fair_use_caps_and_its_revocation_fails_queued_work(client, env, upstream, worker, db):
    created = json.loads(
        cli(env, "keys", "create", "--name", "cli", "--rpm", "1", "--max-parallel", "2", "--max-queued", "5").stdout
    )
    assert (created["max_parallel_requests"], created["max_queued_jobs"]) == (2, 5)
    updated = json.loads(cli(env, "keys", "update", created["id"], "--max-queued", "7").stdout)
    assert (updated["max_parallel_requests"], updated["max_queued_jobs"]) == (2, 7)
    secret = created["key"]
    assert client.post("/v1/chat/completions", json=BODY, headers=auth(secret)).status_code == 200
    queued = queued_job(client, secret)

    assert json.loads(cli(env, "keys", "revoke", created["id"]).stdout)["active"] is False
    failed = records.job(db, queued)
    assert (failed.status, failed.error_status, failed.error["code"]) == ("failed", 401, "invalid_api_key")
    assert len(upstream.chat_bodies()) == 1
