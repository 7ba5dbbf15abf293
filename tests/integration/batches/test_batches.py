"""OpenAI's Batch API: the SDK unchanged, a 2,000-line batch under upstream failures, bad files, cancel,
expiry, isolation between keys, and the submitter CLI."""

import os
import subprocess
import sys
import threading
import time

import openai
import pytest
import redis as redis_lib
import requests
from sqlalchemy import func, select

from llmproxy.batches import results
from llmproxy.devtools.stub_responses import Fail, Ok, Slow
from llmproxy.devtools.waiting import wait_for
from llmproxy.jobs import live
from llmproxy.storage.engine import session_scope
from llmproxy.storage.models import Job, UsageEntry
from tests.support import batching as b
from tests.support import records

ADMIN = {"Authorization": "Bearer admin-test-key-0123456789"}


def auth(secret):
    return {"Authorization": f"Bearer {secret}"}


def getter(client, secret):
    return lambda batch_id: client.get(f"/v1/batches/{batch_id}", headers=auth(secret)).json


create = b.create_batch


def content(client, secret, file_id):
    if file_id is None:
        return []
    r = client.get(f"/v1/files/{file_id}/content", headers=auth(secret))
    assert r.status_code == 200
    return b.parse(r.data)


def test_openai_sdk_batch_calls(live, make_key, upstream, worker):
    secret, _ = make_key()
    sdk = openai.OpenAI(base_url=live + "/v1", api_key=secret, max_retries=0)
    uploaded = sdk.files.create(file=("in.jsonl", b.file_of(3, content="sdk")), purpose="batch")
    assert uploaded.purpose == "batch" and uploaded.status == "processed" and uploaded.id.startswith("file-")
    assert sdk.files.retrieve(uploaded.id).bytes == uploaded.bytes
    batch = sdk.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h", metadata={"run": "sdk"}
    )
    assert batch.status in ("validating", "in_progress") and batch.metadata == {"run": "sdk"}
    done = b.wait_batch(lambda i: sdk.batches.retrieve(i).model_dump(), batch.id)
    assert done["status"] == "completed" and done["request_counts"] == {"total": 3, "completed": 3, "failed": 0}
    assert done["completed_at"] >= done["finalizing_at"] >= done["in_progress_at"] >= done["created_at"]
    assert done["error_file_id"] is None
    listed = sdk.batches.list(limit=10)
    assert [x.id for x in listed.data] == [batch.id] and listed.has_more is False
    output = b.parse(sdk.files.content(done["output_file_id"]).content)
    b.check_results(done, output, [], {"req-0", "req-1", "req-2"})
    assert all(x["response"]["body"]["choices"][0]["message"]["content"] == "echo: sdk" for x in output)
    out_file = sdk.files.retrieve(done["output_file_id"])
    assert out_file.purpose == "batch_output"
    assert {f.id for f in sdk.files.list()} == {uploaded.id, out_file.id}
    assert sdk.files.delete(uploaded.id).deleted is True
    with pytest.raises(openai.NotFoundError):
        sdk.batches.retrieve("batch_unknown")


def test_usage_output_expiry_and_the_batch_lines(client, make_key, upstream, worker, db):
    secret, _ = make_key()
    theirs, _ = make_key()
    r = create(
        client,
        secret,
        b.file_of(12, content="count me"),
        output_expires_after={"anchor": "created_at", "seconds": 7200},
    )
    batch = b.wait_batch(getter(client, secret), r.json["id"])
    output = content(client, secret, batch["output_file_id"])
    assert len(output) == 12
    reported = [x["response"]["body"]["usage"] for x in output]
    usage = batch["usage"]
    assert usage["input_tokens"] == sum(u["prompt_tokens"] for u in reported) > 0
    assert usage["output_tokens"] == sum(u["completion_tokens"] for u in reported) > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    meta = client.get(f"/v1/files/{batch['output_file_id']}", headers=auth(secret)).json
    assert meta["expires_at"] - meta["created_at"] == 7200
    # Its lines as jobs, a page at a time; another key's batch is 404.
    page = client.get(f"/v1/jobs?batch_id={batch['id']}&limit=5", headers=auth(secret)).json
    ids = [j["id"] for j in page["data"]]
    while page["has_more"]:
        page = client.get(f"/v1/jobs?batch_id={batch['id']}&limit=5&after={ids[-1]}", headers=auth(secret)).json
        ids += [j["id"] for j in page["data"]]
    assert sorted(ids) == sorted(x["response"]["request_id"] for x in output)
    other = client.post("/v1/jobs", json={"body": b.line("single")["body"]}, headers=auth(secret)).json
    assert other["id"] not in ids
    missing = client.get(f"/v1/jobs?batch_id={batch['id']}", headers=auth(theirs))
    assert missing.status_code == 404 and missing.json["error"]["code"] == "not_found"


def test_cancel_wakes_long_polls_of_waiting_lines(live, make_key, upstream, worker, settings):
    secret, _ = make_key(rpm_limit=1)  # one line runs, the others wait queued for capacity
    batch = b.submit(live, secret, b.file_of(3))
    get = lambda path: requests.get(live + path, headers=auth(secret), timeout=90).json()  # noqa: E731
    # Once one line has taken the minute's only slot, the queued ones wait for the next minute.
    wait_for(
        lambda: get(f"/v1/batches/{batch['id']}")["request_counts"]["completed"] == 1,
        timeout=30,
        message="the first line to complete",
    )
    queued = get(f"/v1/jobs?batch_id={batch['id']}&status=queued")["data"]
    assert len(queued) == 2
    polled: list = []
    poller = threading.Thread(target=lambda: polled.append(get(f"/v1/jobs/{queued[0]['id']}?wait=60")))
    poller.start()
    watcher = redis_lib.Redis.from_url(settings.redis_url)
    wait_for(
        lambda: any(c.get("cmd") == "xread" for c in watcher.client_list()),
        timeout=10,
        message="the long poll to block on the job's stream",
    )
    watcher.close()
    wait_for(
        lambda: (
            requests.post(f"{live}/v1/batches/{batch['id']}/cancel", headers=auth(secret), timeout=30).json()["status"]
            in ("cancelling", "cancelled")
        ),
        timeout=10,
        message="the cancel to be accepted",
    )
    # The cancel wakes the long poll; without that it would answer only when its 60 s run out.
    poller.join(timeout=20)
    assert not poller.is_alive(), "the long poll was not woken by the cancel"
    assert polled[0]["status"] == "cancelled" and polled[0]["error"]["code"] == "batch_cancelled"


def test_openai_sdk_cancel_keeps_partial_output(live, make_key, upstream, worker, db):
    secret, _ = make_key(rpm_limit=1)  # the batch's share of 1 rpm: one line runs, the rest wait
    sdk = openai.OpenAI(base_url=live + "/v1", api_key=secret, max_retries=0)
    uploaded = sdk.files.create(file=("in.jsonl", b.file_of(5)), purpose="batch")
    batch = sdk.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    wait_for(
        lambda: sdk.batches.retrieve(batch.id).request_counts.completed == 1,
        timeout=30,
        message="the first line to complete",
    )
    # As OpenAI answers: `cancelling` at once (or `cancelled` if a worker already finalized it) ...
    assert sdk.batches.cancel(batch.id).status in ("cancelling", "cancelled")
    # ... and a worker's finalize task writes the partial results once no line runs.
    cancelled = wait_for(
        lambda: (got := sdk.batches.retrieve(batch.id)).status == "cancelled" and got,
        timeout=30,
        message="the cancelled batch to be finalized",
    )
    assert cancelled.cancelling_at and cancelled.cancelled_at
    assert cancelled.request_counts.model_dump() == {"total": 5, "completed": 1, "failed": 0}
    output = b.parse(sdk.files.content(cancelled.output_file_id).content)
    errors = b.parse(sdk.files.content(cancelled.error_file_id).content)
    b.check_results(cancelled.model_dump(), output, errors, {f"req-{i}" for i in range(5)})
    assert len(output) == 1 and {x["error"]["code"] for x in errors} == {"batch_cancelled"}
    assert {j.status for j in b.batch_jobs(db, batch.id)} == {"completed", "cancelled"}
    assert sdk.batches.cancel(batch.id).status == "cancelled"  # again: nothing changes


def test_cancel_lets_lines_running_in_redis_finish_and_bills_them_once(client, make_key, upstream, worker, db, rds):
    """A claimed line runs in Redis while its row still says queued: a cancel must not cancel that row (its
    outcome would be billed but never shown); it finishes, lands in the output and is billed once."""
    secret, key = make_key(rpm_limit=2)  # the batch's share admits a line or so; the others wait, queued
    upstream.script("gpt-3.5-turbo", Slow(2.0), Slow(2.0), *[Ok()] * 4)
    created = create(client, secret, b.file_of(6))
    batch_id = created.json["id"]
    wait_for(upstream.chat_bodies, timeout=30, message="a line to reach the upstream")
    lines = b.batch_jobs(db, batch_id)
    running = live.started(rds, [j.id for j in lines])
    assert running and all(j.status == "queued" for j in lines if j.id in running)  # the case under test
    assert client.post(f"/v1/batches/{batch_id}/cancel", headers=auth(secret)).json["status"] in (
        "cancelling",
        "cancelled",
    )
    done = b.wait_batch(getter(client, secret), batch_id, timeout=60)
    assert done["status"] == "cancelled", done
    served = len(upstream.chat_bodies())
    output, errors = content(client, secret, done["output_file_id"]), content(client, secret, done["error_file_id"])
    b.check_results(done, output, errors, {f"req-{i}" for i in range(6)})
    assert done["request_counts"] == {"total": 6, "completed": served, "failed": 0} and len(output) == served
    assert {x["error"]["code"] for x in errors} == ({"batch_cancelled"} if served < 6 else set())
    assert {j.id for j in b.batch_jobs(db, batch_id) if j.status == "completed"} >= running
    billed = b.billed(db, batch_id)
    assert len(billed) == served and set(billed.values()) == {1}
    with session_scope(db) as session:
        spent = session.scalar(select(func.sum(UsageEntry.cost_usd)).where(UsageEntry.api_key_id == key["id"]))
    assert records.key_spend(db, key["id"]) == spent


def test_two_thousand_lines_under_upstream_failures(client, make_key, upstream, worker, db):
    n = 2000
    secret, _ = make_key()
    # One upstream call in ten fails with 429 or 500 (retried: the line still succeeds); one in fifty
    # answers 400, which is not retried: that line fails. The script is shared by all concurrent calls.
    script = [
        Fail(429, retry_after=0) if i % 20 == 0 else Fail(500) if i % 20 == 10 else Fail(400) if i % 50 == 25 else None
        for i in range(n)
    ]
    upstream.script("gpt-3.5-turbo", *[s if s is not None else Ok() for s in script])
    started = time.monotonic()
    r = create(client, secret, b.file_of(n))
    assert r.status_code == 200 and r.json["status"] == "validating", r.json
    batch = b.wait_batch(getter(client, secret), r.json["id"], timeout=300)
    elapsed = time.monotonic() - started
    print(f"\n{n}-line batch: {elapsed:.1f} s ({n / elapsed:.0f} lines/s)")
    assert batch["status"] == "completed"
    output, errors = content(client, secret, batch["output_file_id"]), content(client, secret, batch["error_file_id"])
    b.check_results(batch, output, errors, {f"req-{i}" for i in range(n)})
    assert len(errors) == sum(1 for s in script if isinstance(s, Fail) and s.status == 400)
    assert {x["response"]["status_code"] for x in errors} == {400}
    billed = b.billed(db, batch["id"])
    assert set(billed.values()) == {1} and len(billed) == len(output)


def test_bad_file_fails_the_batch_and_creates_no_job(client, make_key, db, worker):
    secret, key = make_key()
    lines = [
        b.line("ok"),
        "{not json",
        {"method": "POST", "url": "/v1/chat/completions", "body": {}},
        b.line("ok"),
        dict(b.line("x"), url="/v1/embeddings"),
        dict(b.line("y"), method="GET"),
        b.line("s", stream=True),
        b.line("m", model="no-such-model"),
        b.line("e", messages=[]),
    ]
    r = create(client, secret, b.jsonl(lines))
    assert r.status_code == 200 and r.json["status"] == "validating"
    batch = b.wait_batch(getter(client, secret), r.json["id"])  # a worker reads the lines
    assert batch["status"] == "failed" and batch["failed_at"] and batch["output_file_id"] is None
    errors = batch["errors"]["data"]
    assert batch["errors"]["object"] == "list"
    assert [(e["line"], e["code"]) for e in errors] == [
        (2, "invalid_json_line"),
        (3, "missing_custom_id"),
        (4, "duplicate_custom_id"),
        (5, "invalid_url"),
        (6, "invalid_method"),
        (7, "invalid_body"),
        (8, "model_not_found"),
        (9, "invalid_request"),
    ]
    assert errors[6]["param"] == "body.model" and "no-such-model" in errors[6]["message"]
    assert errors[7]["param"] == "body.messages"
    with session_scope(db) as session:
        assert session.scalar(select(func.count()).select_from(Job).where(Job.api_key_id == key["id"])) == 0
    assert client.get(f"/v1/batches/{batch['id']}", headers=auth(secret)).json["status"] == "failed"


@pytest.mark.parametrize(
    "fields, status, param",
    [
        ({"endpoint": "/v1/completions"}, 400, "endpoint"),
        ({"completion_window": "1h"}, 400, "completion_window"),
        ({"input_file_id": "file-unknown"}, 404, None),
        ({"metadata": {"k": 1}}, 400, "metadata"),
        ({"extra": True}, 400, "extra"),
        ({"output_expires_after": {"anchor": "created_at", "seconds": 60}}, 400, "output_expires_after"),
        ({"output_expires_after": {"anchor": "last_active_at", "seconds": 3600}}, 400, "output_expires_after"),
        ({"output_expires_after": {"anchor": "created_at", "seconds": "3600"}}, 400, "output_expires_after"),
    ],
)
def test_bad_batch_requests_change_nothing(client, make_key, fields, status, param):
    secret, _ = make_key()
    r = create(client, secret, b.file_of(1), **fields)
    assert r.status_code == status and r.json["error"]["param"] == param
    assert client.get("/v1/batches", headers=auth(secret)).json["data"] == []


def test_expiry_keeps_partial_output(settings, db, upstream, worker, rds):
    from web import create_app

    client = create_app(settings.with_(batch_completion_window_seconds=2)).test_client()
    secret = client.post("/admin/keys", json={"rpm_limit": 1}, headers=ADMIN).json["key"]
    r = create(client, secret, b.file_of(4))
    assert r.json["completion_window"] == "24h" and r.json["expires_at"] - r.json["created_at"] == 2
    b.wait_batch(getter(client, secret), r.json["id"], statuses=("in_progress",))
    wait_for(
        lambda: getter(client, secret)(r.json["id"])["request_counts"]["completed"] == 1,
        timeout=30,
        message="the first line to complete",
    )

    def swept():
        # What the beat task `llmproxy.sweep_batches` does every few seconds.
        results.sweep(db, send=never, stale_seconds=300, retention_days=30, redis_client=rds)
        return getter(client, secret)(r.json["id"])["status"] == "expired"

    wait_for(swept, timeout=10, interval=0.2, message="the batch to expire")
    batch = getter(client, secret)(r.json["id"])
    assert batch["expired_at"] >= batch["expires_at"] and batch["completed_at"] is None
    output, errors = content(client, secret, batch["output_file_id"]), content(client, secret, batch["error_file_id"])
    b.check_results(batch, output, errors, {f"req-{i}" for i in range(4)})
    assert len(output) == 1 and {x["error"]["code"] for x in errors} == {"batch_expired"}


def never(_ids):
    raise AssertionError("every line was sent already")


def test_other_keys_get_404(client, make_key, upstream, worker):
    mine, _ = make_key()
    theirs, _ = make_key()
    r = create(client, mine, b.file_of(2))
    batch = b.wait_batch(getter(client, mine), r.json["id"])
    job_id = content(client, mine, batch["output_file_id"])[0]["response"]["request_id"]
    for method, path in [
        ("get", f"/v1/batches/{batch['id']}"),
        ("post", f"/v1/batches/{batch['id']}/cancel"),
        ("get", f"/v1/batches?after={batch['id']}"),
        ("get", f"/v1/jobs/{job_id}"),
        ("get", f"/v1/files/{batch['input_file_id']}"),
        ("get", f"/v1/files/{batch['output_file_id']}/content"),
    ]:
        resp = getattr(client, method)(path, headers=auth(theirs))
        assert resp.status_code == 404 and resp.json["error"]["code"] == "not_found", path
    assert client.get("/v1/batches", headers=auth(theirs)).json["data"] == []
    steal = client.post(
        "/v1/batches",
        headers=auth(theirs),
        json={"input_file_id": batch["input_file_id"], "endpoint": "/v1/chat/completions", "completion_window": "24h"},
    )
    assert steal.status_code == 404
    assert client.get(f"/v1/jobs/{job_id}", headers=auth(mine)).json["batch_id"] == batch["id"]


def test_list_with_cursor(client, make_key):
    secret, _ = make_key()
    ids = [create(client, secret, b.jsonl(["bad"])).json["id"] for _ in range(3)]
    page = client.get("/v1/batches?limit=2", headers=auth(secret)).json
    assert [x["id"] for x in page["data"]] == ids[::-1][:2] and page["has_more"] is True
    rest = client.get(f"/v1/batches?after={page['last_id']}", headers=auth(secret)).json
    assert [x["id"] for x in rest["data"]] == ids[:1] and rest["has_more"] is False
    assert client.get("/v1/batches?limit=0", headers=auth(secret)).status_code == 400


def test_cli_submit_writes_results_in_input_order(live, make_key, upstream, worker, tmp_path):
    secret, _ = make_key()
    source = tmp_path / "in.jsonl"
    source.write_bytes(b.jsonl([b.line(f"c{i}", content=f"n{i}") for i in range(7)]))
    upstream.script("gpt-3.5-turbo", *[Ok()] * 6, Fail(400))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "llmproxy",
            "batch",
            "submit",
            str(source),
            "--url",
            live,
            "--key",
            secret,
            "--output",
            str(tmp_path / "out.jsonl"),
            "--poll",
            "0.2",
        ],
        env={**os.environ, "PYTHONPATH": os.getcwd()},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "done" in done.stderr and "/s" in done.stderr
    output = b.parse((tmp_path / "out.jsonl").read_bytes())
    errors = b.parse((tmp_path / "in.errors.jsonl").read_bytes())
    assert len(output) + len(errors) == 7 and len(errors) == 1
    ordered = [f"c{i}" for i in range(7)]
    assert [x["custom_id"] for x in output] == [c for c in ordered if c != errors[0]["custom_id"]]
    attached = subprocess.run(
        [
            sys.executable,
            "-m",
            "llmproxy",
            "batch",
            "attach",
            output[0]["response"]["request_id"],
            "--url",
            live,
            "--key",
            secret,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert attached.returncode == 1 and "404" in attached.stderr
