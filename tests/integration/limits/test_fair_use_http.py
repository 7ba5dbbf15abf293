"""Fair use at the HTTP edge: a key's requests in flight (streams, long-polls) and admission of stored work at submit."""

from __future__ import annotations

import threading

import requests

from llmproxy.devtools.stub_responses import Ok
from llmproxy.devtools.waiting import wait_for
from llmproxy.limits.reservations import limit_keys
from tests.support import batching as b
from tests.support import records

MSG = [{"role": "user", "content": "hello there"}]
BODY = {"model": "gpt-3.5-turbo", "messages": MSG}
LONG = " ".join(f"w{i}" for i in range(150))  # 0.2 s a chunk: ~30 s if read to the end


def auth(secret):
    return {"Authorization": f"Bearer {secret}"}


class OpenStream:
    """A streaming response whose first chunk has arrived, kept open until `close()`.

    It holds on to its line iterator: once that iterator is garbage, urllib3 closes the connection (a generator
    closed mid-read counts as an error), and the gateway would see the caller go away.
    """

    def __init__(self, response, lines):
        self.response = response
        self.lines = lines

    def close(self):
        self.response.close()


def open_stream(live, secret):
    """A streaming request whose first chunk has arrived (the request is in flight); returns (stream, job id)."""
    response = requests.post(
        live + "/v1/chat/completions",
        json={**BODY, "stream": True},
        headers=auth(secret),
        stream=True,
        timeout=30,
    )
    assert response.status_code == 200, response.text
    lines = response.iter_lines()
    assert next(line for line in lines if line).startswith(b"data: ")
    return OpenStream(response, lines), response.headers["x-request-id"]


def in_flight(rds, key_id):
    return rds.zcard(limit_keys(key_id).par)


def test_the_cap_holds_for_streams_and_long_polls_and_slots_come_back(live, make_key, upstream, worker, rds, db):
    secret, key = make_key(name="fair", max_parallel_requests=3)
    other, _ = make_key(name="other", max_parallel_requests=3)
    upstream.script("gpt-3.5-turbo", Ok(content=LONG, chunk_delay=0.2), Ok(content=LONG, chunk_delay=0.2))
    first, first_job = open_stream(live, secret)
    second, _ = open_stream(live, secret)
    polled: list[int] = []
    poll = threading.Thread(
        target=lambda: polled.append(
            requests.get(f"{live}/v1/jobs/{first_job}?wait=30", headers=auth(secret), timeout=40).status_code
        )
    )
    poll.start()
    wait_for(lambda: in_flight(rds, key["id"]) == 3, timeout=10, message="two streams and a long-poll in flight")

    # The next one, of any kind, is refused while nothing is stored or sent; another key is not affected.
    refused_poll = requests.get(f"{live}/v1/jobs/{first_job}?wait=5", headers=auth(secret), timeout=10)
    refused_stream = requests.post(
        live + "/v1/chat/completions", json={**BODY, "stream": True}, headers=auth(secret), timeout=10
    )
    for refused in (refused_poll, refused_stream):
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "rate_limit_exceeded"
        assert refused.json()["error"]["param"] == "parallel_requests"
        assert refused.headers["Retry-After"] == "1"
    assert "x-request-id" not in refused_stream.headers and len(upstream.chat_bodies()) == 2
    theirs = requests.post(live + "/v1/chat/completions", json=BODY, headers=auth(other), timeout=30)
    assert theirs.status_code == 200, theirs.text

    # Callers that go away give their slots back: the long-poll ends with the first stream's job.
    first.close()
    second.close()
    poll.join(timeout=40)
    assert polled == [200]
    wait_for(lambda: in_flight(rds, key["id"]) == 0, timeout=10, message="every slot back")
    again, _ = open_stream(live, secret)
    again.close()
    records.recorded_job(db, first_job)


def test_a_synchronous_request_holds_its_slot_only_while_it_waits(client, make_key, upstream, worker, rds):
    secret, key = make_key(name="sync", max_parallel_requests=1)
    for _ in range(3):  # one at a time, each freed by its job's finish
        assert client.post("/v1/chat/completions", json=BODY, headers=auth(secret)).status_code == 200
    assert in_flight(rds, key["id"]) == 0


def test_queued_jobs_are_capped_at_submit_and_refusals_store_nothing(client, make_key, upstream, worker, db):
    # One request a minute, used up by a synchronous call: the jobs stay queued for the rest of the minute.
    secret, key = make_key(name="queued", rpm_limit=1, max_queued_jobs=2)
    assert client.post("/v1/chat/completions", json=BODY, headers=auth(secret)).status_code == 200
    jobs = [client.post("/v1/jobs", json={"body": BODY}, headers=auth(secret)) for _ in range(2)]
    assert [j.status_code for j in jobs] == [202, 202]

    refused = [
        client.post("/v1/jobs", json={"body": BODY}, headers=auth(secret)),
        client.post("/v1/chat/completions", json=BODY, headers={**auth(secret), "Prefer": "respond-async"}),
        create_batch(client, secret, b.jsonl([b.line("one")])),
    ]
    for r in refused:
        assert r.status_code == 429, r.json
        assert (r.json["error"]["code"], r.json["error"]["param"]) == ("rate_limit_exceeded", "queued_jobs")
    assert client.get("/v1/batches", headers=auth(secret)).json["data"] == []
    assert sorted(j.id for j in records.jobs(db) if j.queue == "batch") == sorted(j.json["id"] for j in jobs)

    # A cancelled job leaves room for one more.
    assert client.post(f"/v1/jobs/{jobs[0].json['id']}/cancel", headers=auth(secret)).json["status"] == "cancelled"
    assert client.post("/v1/jobs", json={"body": BODY}, headers=auth(secret)).status_code == 202


def test_a_spent_budget_refuses_jobs_and_batches_at_submit_as_it_refuses_a_request(client, make_key, upstream, db):
    secret, _ = make_key(name="spent", budget_usd="0")
    sync = client.post("/v1/chat/completions", json=BODY, headers=auth(secret))
    assert sync.status_code == 429 and sync.json["error"]["code"] == "insufficient_quota"
    for r in (
        client.post("/v1/jobs", json={"body": BODY}, headers=auth(secret)),
        client.post("/v1/chat/completions", json=BODY, headers={**auth(secret), "Prefer": "respond-async"}),
        create_batch(client, secret, b.jsonl([b.line("one")])),
    ):
        assert r.status_code == 429 and r.json == sync.json
    assert records.jobs(db) == [] and client.get("/v1/batches", headers=auth(secret)).json["data"] == []
    assert upstream.chat_bodies() == []


def test_a_disallowed_model_or_a_revoked_key_is_refused_at_submit(
    client, make_key, admin_headers, upstream, db, worker
):
    secret, key = make_key(name="narrow", models=["gpt-4"])
    for r in (
        client.post("/v1/jobs", json={"body": BODY}, headers=auth(secret)),
        client.post("/v1/chat/completions", json=BODY, headers={**auth(secret), "Prefer": "respond-async"}),
    ):
        assert r.status_code == 403 and r.json["error"]["code"] == "model_not_allowed"
    created = create_batch(client, secret, b.jsonl([b.line("one")]))
    # A batch's lines are checked by a worker (the batch is `validating` until then).
    batch = b.wait_batch(lambda i: client.get(f"/v1/batches/{i}", headers=auth(secret)).json, created.json["id"])
    assert batch["status"] == "failed" and batch["errors"]["data"][0]["code"] == "model_not_allowed"
    assert records.jobs(db) == []
    assert client.delete(f"/admin/keys/{key['id']}", headers=admin_headers).status_code == 200
    revoked = client.post("/v1/jobs", json={"body": {**BODY, "model": "gpt-4"}}, headers=auth(secret))
    assert revoked.status_code == 401 and revoked.json["error"]["code"] == "invalid_api_key"
    assert records.jobs(db) == []


def test_fair_use_fields_are_edited_and_shown_like_the_other_limits(client, make_key, admin_headers):
    _, key = make_key(name="caps", max_parallel_requests=4, max_queued_jobs=100)
    assert (key["max_parallel_requests"], key["max_queued_jobs"]) == (4, 100)
    patched = client.patch(f"/admin/keys/{key['id']}", json={"max_queued_jobs": None}, headers=admin_headers)
    assert (patched.json["max_parallel_requests"], patched.json["max_queued_jobs"]) == (4, None)
    bad = client.patch(f"/admin/keys/{key['id']}", json={"max_parallel_requests": 0}, headers=admin_headers)
    assert bad.status_code == 400 and bad.json["error"]["param"] == "max_parallel_requests"
    assert client.get(f"/admin/keys/{key['id']}", headers=admin_headers).json["max_parallel_requests"] == 4


create_batch = b.create_batch
