"""Responses as jobs and batch lines (endpoint /v1/responses), read back with GET /v1/responses/{id}; a conversation
is continued only through POST /v1/responses."""

from __future__ import annotations

from tests.support import batching as b
from tests.support import records

MODEL = "gpt-3.5-turbo"


def auth(secret: str) -> dict:
    return {"Authorization": f"Bearer {secret}"}


def test_a_job_with_endpoint_responses_is_a_response(client, make_key, upstream, worker, db):
    secret, _ = make_key()
    r = client.post(
        "/v1/jobs",
        json={"endpoint": "/v1/responses", "body": {"model": MODEL, "input": "as a job"}},
        headers=auth(secret),
    )
    assert r.status_code == 202 and r.json["endpoint"] == "/v1/responses", r.json
    job = records.wait_for_job(db, r.json["id"])
    assert job.status == "completed" and job.result["object"] == "response"
    read = client.get(f"/v1/responses/{job.id}", headers=auth(secret)).json
    assert read["output"][0]["content"][0]["text"] == "echo: as a job" and read["usage"]["input_tokens"] > 0
    assert len(records.ledger(db, job.id)) == 1


def test_previous_response_id_is_refused_outside_post_responses(client, make_key, db):
    secret, _ = make_key()
    body = {"model": MODEL, "input": "x", "previous_response_id": "resp_1"}
    r = client.post("/v1/jobs", json={"endpoint": "/v1/responses", "body": body}, headers=auth(secret))
    assert r.status_code == 400 and r.json["error"]["param"] == "previous_response_id"
    smuggled = {"model": MODEL, "input": "x", "_history": "not items"}
    r = client.post("/v1/jobs", json={"endpoint": "/v1/responses", "body": smuggled}, headers=auth(secret))
    assert r.status_code == 400 and r.json["error"]["param"] == "_history"
    assert records.jobs(db) == []


def test_a_batch_of_response_lines(client, make_key, upstream, worker, db):
    secret, _ = make_key()
    lines = [
        {
            "custom_id": f"r-{i}",
            "method": "POST",
            "url": "/v1/responses",
            "body": {"model": MODEL, "input": f"line {i}"},
        }
        for i in range(3)
    ]
    created = b.create_batch(client, secret, b.jsonl(lines), endpoint="/v1/responses")
    assert created.status_code == 200, created.json
    batch = b.wait_batch(lambda i: client.get(f"/v1/batches/{i}", headers=auth(secret)).json, created.json["id"])
    assert batch["status"] == "completed" and batch["request_counts"]["completed"] == 3, batch
    output = b.parse(client.get(f"/v1/files/{batch['output_file_id']}/content", headers=auth(secret)).data)
    bodies = {x["custom_id"]: x["response"]["body"] for x in output}
    assert {k: v["object"] for k, v in bodies.items()} == {"r-0": "response", "r-1": "response", "r-2": "response"}
    assert bodies["r-2"]["output"][0]["content"][0]["text"] == "echo: line 2"
    assert set(b.billed(db, batch["id"]).values()) == {1}


def test_a_background_response_under_an_idempotency_key_is_created_once(client, make_key, upstream, worker, db):
    secret, _ = make_key()
    body = {"model": MODEL, "input": "once only", "background": True}
    headers = auth(secret) | {"Idempotency-Key": "order-7"}
    first = client.post("/v1/responses", json=body, headers=headers)
    again = client.post("/v1/responses", json=body, headers=headers)
    assert first.status_code == again.status_code == 200, (first.json, again.json)
    assert first.json["id"] == again.json["id"] and first.json["object"] == "response"
    other = client.post("/v1/responses", json={**body, "input": "something else"}, headers=headers)
    assert other.status_code == 422 and other.json["error"]["code"] == "idempotency_mismatch"
    job = records.wait_for_job(db, first.json["id"])
    assert job.status == "completed" and len(records.jobs(db)) == 1 and len(records.ledger(db, job.id)) == 1
