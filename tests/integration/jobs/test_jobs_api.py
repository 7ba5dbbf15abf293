"""Job polling: submit, long-poll, list, cancel, Idempotency-Key, Prefer headers, isolation between keys."""

import pytest

from llmproxy.devtools.stub_responses import Slow
from llmproxy.devtools.waiting import wait_for
from tests.support import records

MSG = [{"role": "user", "content": "a job"}]
BODY = {"model": "gpt-3.5-turbo", "messages": MSG}


def auth(secret):
    return {"Authorization": f"Bearer {secret}"}


def test_submit_and_long_poll(client, make_key, upstream, worker):
    secret, _ = make_key()
    r = client.post("/v1/jobs", json={"body": BODY, "metadata": {"batch": "a"}}, headers=auth(secret))
    assert r.status_code == 202
    job = r.json
    assert r.headers["Location"] == f"/v1/jobs/{job['id']}"
    assert job["object"] == "job" and job["status"] in ("queued", "in_progress", "completed")
    assert job["metadata"] == {"batch": "a"}
    done = client.get(f"/v1/jobs/{job['id']}?wait=20", headers=auth(secret)).json
    assert done["status"] == "completed"
    assert done["result"]["object"] == "chat.completion"
    assert done["usage"]["total_tokens"] > 0 and float(done["cost_usd"]) > 0
    assert done["attempts"][0]["outcome"] == "ok"
    assert done["completed_at"] >= done["started_at"] >= done["created_at"]


def test_prefer_respond_async(client, make_key, upstream, worker):
    secret, _ = make_key()
    r = client.post("/v1/chat/completions", json=BODY, headers={**auth(secret), "Prefer": "respond-async"})
    assert r.status_code == 202 and r.headers["Preference-Applied"] == "respond-async"
    assert client.get(f"/v1/jobs/{r.json['id']}?wait=20", headers=auth(secret)).json["status"] == "completed"


def test_prefer_wait_answers_202_then_completes(client, make_key, upstream, worker):
    secret, _ = make_key()
    upstream.script("gpt-3.5-turbo", Slow(1.5))
    r = client.post("/v1/chat/completions", json=BODY, headers={**auth(secret), "Prefer": "wait=0.2"})
    assert r.status_code == 202, r.json
    assert r.headers["Preference-Applied"] == "wait=0.2"
    assert r.json["status"] in ("queued", "in_progress")
    assert client.get(f"/v1/jobs/{r.json['id']}?wait=20", headers=auth(secret)).json["status"] == "completed"
    fast = client.post("/v1/chat/completions", json=BODY, headers={**auth(secret), "Prefer": "wait=20"})
    assert fast.status_code == 200 and fast.json["object"] == "chat.completion"


def test_list_with_cursor_and_status(client, make_key, upstream, worker, db):
    secret, _ = make_key()
    ids = [client.post("/v1/jobs", json={"body": BODY}, headers=auth(secret)).json["id"] for _ in range(5)]
    for job_id in ids:
        assert client.get(f"/v1/jobs/{job_id}?wait=20", headers=auth(secret)).json["status"] == "completed"
    page = client.get("/v1/jobs?limit=2", headers=auth(secret)).json
    assert page["object"] == "list" and page["has_more"] is True
    assert [j["id"] for j in page["data"]] == ids[::-1][:2]
    # Ended, recorded or not: the list shows each job as it is now.
    assert {j["status"] for j in page["data"]} == {"completed"}
    rest = client.get(f"/v1/jobs?limit=10&after={page['last_id']}", headers=auth(secret)).json
    assert [j["id"] for j in rest["data"]] == ids[::-1][2:] and rest["has_more"] is False
    for job_id in ids:
        records.recorded_job(db, job_id)  # a status filter reads stored statuses
    assert len(client.get("/v1/jobs?status=completed", headers=auth(secret)).json["data"]) == 5
    assert client.get("/v1/jobs?status=failed", headers=auth(secret)).json["data"] == []


def test_idempotency_key(client, make_key, upstream, worker, db):
    secret, _ = make_key()
    headers = {**auth(secret), "Idempotency-Key": "abc-1"}
    first = client.post("/v1/jobs", json={"body": BODY}, headers=headers)
    again = client.post("/v1/jobs", json={"body": BODY}, headers=headers)
    assert first.status_code == again.status_code == 202
    assert first.json["id"] == again.json["id"]
    other = client.post("/v1/jobs", json={"body": {**BODY, "temperature": 0.5}}, headers=headers)
    assert other.status_code == 422 and other.json["error"]["code"] == "idempotency_mismatch"
    # The scope is the key: another key may use the same Idempotency-Key.
    secret2, _ = make_key()
    theirs = client.post("/v1/jobs", json={"body": BODY}, headers={**auth(secret2), "Idempotency-Key": "abc-1"})
    assert theirs.status_code == 202 and theirs.json["id"] != first.json["id"]
    listed = client.get("/v1/jobs", headers=auth(secret)).json["data"]
    assert len(listed) == 1


def test_cancel_a_queued_job(client, make_key, upstream, worker):
    secret, _ = make_key(rpm_limit=1)  # batch share of 1 rpm: the second job waits for capacity
    ids = [client.post("/v1/jobs", json={"body": BODY}, headers=auth(secret)).json["id"] for _ in range(2)]

    def statuses():
        return {i: client.get(f"/v1/jobs/{i}", headers=auth(secret)).json["status"] for i in ids}

    # Either job may take the single slot; the other waits, queued, for the next minute.
    done = wait_for(
        lambda: (s := statuses()) and list(s.values()).count("completed") == 1 and s,
        timeout=20,
        message="one job to complete",
    )
    (waiting,) = [i for i, status in done.items() if status != "completed"]
    assert done[waiting] == "queued"
    cancelled = client.post(f"/v1/jobs/{waiting}/cancel", headers=auth(secret))
    assert cancelled.status_code == 200 and cancelled.json["status"] == "cancelled"
    again = client.post(f"/v1/jobs/{waiting}/cancel", headers=auth(secret))
    assert again.json["status"] == "cancelled"


def test_a_job_its_key_can_never_afford_fails_unbilled(client, make_key, upstream, worker, db):
    """Refused when the worker paces it (the worst case exceeds the budget): failed with the refusal, nothing
    sent upstream, nothing billed, and its stored row says so."""
    secret, key = make_key(budget_usd="0.000001")
    created = client.post("/v1/jobs", json={"body": {**BODY, "max_tokens": 1000}}, headers=auth(secret))
    assert created.status_code == 202
    job = client.get(f"/v1/jobs/{created.json['id']}?wait=20", headers=auth(secret)).json
    assert job["status"] == "failed" and job["error"]["code"] == "insufficient_quota", job
    row = records.recorded_job(db, job["id"])
    assert (row.status, row.error_status, row.cost_usd) == ("failed", 429, None)
    assert records.ledger(db, job["id"]) == [] and upstream.chat_bodies() == []


def test_other_keys_get_404(client, make_key, upstream, worker):
    mine, _ = make_key()
    theirs, _ = make_key()
    job = client.post("/v1/jobs", json={"body": BODY}, headers=auth(mine)).json
    for method, path in [
        ("get", f"/v1/jobs/{job['id']}"),
        ("post", f"/v1/jobs/{job['id']}/cancel"),
        ("get", f"/v1/jobs?after={job['id']}"),
    ]:
        r = getattr(client, method)(path, headers=auth(theirs))
        assert r.status_code == 404 and r.json["error"]["code"] == "not_found"
    assert client.get("/v1/jobs", headers=auth(theirs)).json["data"] == []


@pytest.mark.parametrize(
    "payload, param",
    [
        ({}, "body"),
        ({"body": "text"}, "body"),
        ({"body": {**BODY, "stream": True}}, "stream"),
        ({"body": {"model": "ghost", "messages": MSG}}, "model"),
        ({"body": BODY, "metadata": {"k": 1}}, "metadata"),
        ({"body": BODY, "extra": 1}, "extra"),
    ],
)
def test_bad_jobs_are_400_and_store_nothing(client, make_key, payload, param):
    secret, _ = make_key()
    r = client.post("/v1/jobs", json=payload, headers=auth(secret))
    assert r.status_code == 400 and r.json["error"]["param"] == param
    assert client.get("/v1/jobs", headers=auth(secret)).json["data"] == []


def test_bad_wait_and_limit(client, make_key):
    secret, _ = make_key()
    assert client.get("/v1/jobs/job_x?wait=100", headers=auth(secret)).status_code == 400
    assert client.get("/v1/jobs?limit=0", headers=auth(secret)).status_code == 400
    assert client.get("/v1/jobs?status=weird", headers=auth(secret)).status_code == 400
