"""Embeddings through the gateway with the official `openai` SDK: sync waits, jobs, batches, fallbacks, costs.

The stub answers deterministic vectors (llmproxy.devtools.stub_embeddings.vector_for), so each test knows the
exact floats the caller must get, whether they travelled as floats or as base64.
"""

from __future__ import annotations

import base64
import struct
from decimal import Decimal

import openai
import pytest
import requests

from llmproxy.devtools.stub_embeddings import DEFAULT_DIMENSIONS, vector_for
from llmproxy.devtools.stub_responses import Fail, Ok
from tests.support import batching as b
from tests.support import records

SMALL = "text-embedding-3-small"  # seeded: openai, 0.02 USD per 1M input tokens
MISTRAL = "mistral-embed"  # seeded: mistral, 0.10 USD per 1M input tokens


@pytest.fixture
def sdk(live, make_key):
    """An SDK client with a fresh key; returns (client, secret, key json)."""
    secret, key = make_key(name="embeddings")
    client = openai.OpenAI(base_url=live + "/v1", api_key=secret, max_retries=0, timeout=30)
    yield client, secret, key
    client.close()


def embedding_bodies(upstream, path: str = "/v1/embeddings") -> list[dict]:
    """The embeddings bodies the stub received at `path`, in order."""
    return [r["body"] for r in upstream.requests if r["path"] == path]


def decode(text: str) -> list[float]:
    """OpenAI's base64 vector: little-endian float32s (decoded here apart from the gateway's code)."""
    raw = base64.b64decode(text)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def test_one_string_through_the_sdk_default_base64(sdk, upstream, worker, db):
    client, _, key = sdk
    upstream.script(SMALL, Ok(prompt_tokens=7))

    raw = client.embeddings.with_raw_response.create(model=SMALL, input="hello embeddings")
    result = raw.parse()

    # The SDK asks for base64 by default and decodes it: the floats arrive exactly.
    (sent,) = embedding_bodies(upstream)
    assert sent["encoding_format"] == "base64" and sent["model"] == SMALL and sent["input"] == "hello embeddings"
    assert result.object == "list" and result.model == SMALL
    assert [d.index for d in result.data] == [0]
    assert result.data[0].embedding == vector_for("hello embeddings", DEFAULT_DIMENSIONS)
    assert (result.usage.prompt_tokens, result.usage.total_tokens) == (7, 7)
    # 7 tokens × 0.02 USD per 1M.
    assert Decimal(raw.headers["x-llmproxy-cost-usd"]) == Decimal("0.00000014")
    assert (raw.headers["x-llmproxy-provider"], raw.headers["x-llmproxy-model"]) == ("openai", SMALL)
    job_id = raw.headers["x-request-id"]
    row = records.recorded_ledger(db, job_id)
    assert (row.prompt_tokens, row.completion_tokens, row.cost_usd) == (7, 0, Decimal("0.00000014"))
    assert records.recorded_job(db, job_id).operation == "embeddings"
    assert records.key_spend(db, key["id"]) == Decimal("0.00000014")


def test_a_list_as_floats_and_as_base64(sdk, upstream, worker, db):
    client, _, _ = sdk
    texts = ["first", "second text", "third one here"]

    floats = client.embeddings.create(model=SMALL, input=texts, encoding_format="float", dimensions=4)
    assert [d.index for d in floats.data] == [0, 1, 2]
    assert [d.embedding for d in floats.data] == [vector_for(t, 4) for t in texts]
    assert floats.usage.prompt_tokens == 1 + 2 + 3  # the stub counts words

    encoded = client.embeddings.create(model=SMALL, input=texts, encoding_format="base64", dimensions=4)
    assert [decode(d.embedding) for d in encoded.data] == [vector_for(t, 4) for t in texts]
    assert [body["dimensions"] for body in embedding_bodies(upstream)] == [4, 4]


def test_token_arrays(sdk, upstream, worker):
    client, _, _ = sdk
    one = client.embeddings.create(model=SMALL, input=[1, 2, 3], encoding_format="float")
    assert [d.embedding for d in one.data] == [vector_for([1, 2, 3], DEFAULT_DIMENSIONS)]
    assert one.usage.prompt_tokens == 3
    many = client.embeddings.create(model=SMALL, input=[[5, 6], [7]], encoding_format="float")
    assert [d.embedding for d in many.data] == [vector_for([5, 6], 8), vector_for([7], 8)]
    assert many.usage.prompt_tokens == 3


def test_a_lean_server_answering_floats_to_a_base64_request(sdk, upstream, worker, db):
    """A server that ignores encoding_format: the caller still gets what it asked for."""
    client, _, _ = sdk
    upstream.script(SMALL, Fail(200, body={"object": "list", "data": [{"embedding": [0.5, -0.25]}]}))
    raw = client.embeddings.with_raw_response.create(model=SMALL, input="lean")
    got = raw.parse()
    assert got.data[0].embedding == [0.5, -0.25] and got.data[0].index == 0
    # No usage reported: the gateway counts the input itself (cl100k for text-embedding-3) and marks it.
    row = records.recorded_ledger(db, raw.headers["x-request-id"])
    assert row.tokens_estimated is True and row.prompt_tokens == 1


def test_mistral_dialect(sdk, upstream, worker, db):
    client, _, _ = sdk
    raw = client.embeddings.with_raw_response.create(model=MISTRAL, input=["a b", "c"], dimensions=3, user="someone")
    got = raw.parse()
    (sent,) = embedding_bodies(upstream, "/mistral/v1/embeddings")
    # Mistral's names; `user` is not one of its fields (it would answer 422).
    assert sent == {"model": MISTRAL, "input": ["a b", "c"], "output_dimension": 3, "encoding_format": "base64"}
    assert [d.embedding for d in got.data] == [vector_for("a b", 3), vector_for("c", 3)]
    row = records.recorded_ledger(db, raw.headers["x-request-id"])
    assert (row.provider_served, row.prompt_tokens, row.cost_usd) == ("mistral", 3, Decimal("0.0000003"))


def test_falls_back_to_another_embedding_model(sdk, upstream, worker, db, client, admin_headers):
    sdk_client, _, _ = sdk
    r = client.patch(f"/admin/models/{SMALL}", json={"fallbacks": [MISTRAL]}, headers=admin_headers)
    assert r.status_code == 200, r.json
    upstream.script(SMALL, Fail(503), Fail(503), Fail(503))

    raw = sdk_client.embeddings.with_raw_response.create(model=SMALL, input="fall back")
    assert raw.parse().data[0].embedding == vector_for("fall back", DEFAULT_DIMENSIONS)
    assert (raw.headers["x-llmproxy-provider"], raw.headers["x-llmproxy-model"]) == ("mistral", MISTRAL)
    job = records.recorded_job(db, raw.headers["x-request-id"])
    assert [(a["model"], a["outcome"]) for a in job.attempts][-1] == (MISTRAL, "ok")
    assert records.recorded_ledger(db, job.id).model_served == MISTRAL


def test_as_a_job_through_prefer_and_through_v1_jobs(sdk, live, upstream, worker, db):
    client, secret, _ = sdk
    raw = client.embeddings.with_raw_response.create(
        model=SMALL, input="later", encoding_format="float", extra_headers={"Prefer": "respond-async"}
    )
    assert raw.status_code == 202
    job = raw.http_response.json()
    assert job["object"] == "job" and job["endpoint"] == "/v1/embeddings"
    headers = {"Authorization": f"Bearer {secret}"}
    done = requests.get(f"{live}/v1/jobs/{job['id']}?wait=20", headers=headers, timeout=30).json()
    assert done["status"] == "completed"
    assert done["result"]["data"][0]["embedding"] == vector_for("later", DEFAULT_DIMENSIONS)
    assert done["usage"]["prompt_tokens"] == 1

    body = {"endpoint": "/v1/embeddings", "body": {"model": SMALL, "input": ["x", "y"], "encoding_format": "float"}}
    posted = requests.post(f"{live}/v1/jobs", json=body, headers=headers, timeout=30)
    assert posted.status_code == 202, posted.text
    done = requests.get(f"{live}/v1/jobs/{posted.json()['id']}?wait=20", headers=headers, timeout=30).json()
    assert [d["embedding"] for d in done["result"]["data"]] == [vector_for("x", 8), vector_for("y", 8)]
    assert Decimal(done["cost_usd"]) == Decimal("0.00000004")
    for job_id in (job["id"], posted.json()["id"]):
        assert records.recorded_ledger(db, job_id).prompt_tokens > 0
    assert len(records.ledger(db)) == 2


def test_a_batch_of_embedding_lines(sdk, upstream, worker, db):
    client, _, _ = sdk
    lines = [
        {
            "custom_id": f"e-{i}",
            "method": "POST",
            "url": "/v1/embeddings",
            "body": {"model": SMALL, "input": f"line {i} words", "encoding_format": "float"},
        }
        for i in range(5)
    ]
    uploaded = client.files.create(file=("emb.jsonl", b.jsonl(lines)), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/embeddings", completion_window="24h")
    done = b.wait_batch(lambda i: client.batches.retrieve(i).model_dump(), batch.id)
    assert done["status"] == "completed" and done["request_counts"]["completed"] == 5
    output = {x["custom_id"]: x for x in b.parse(client.files.content(done["output_file_id"]).content)}
    for i in range(5):
        answer = output[f"e-{i}"]["response"]["body"]
        assert answer["data"][0]["embedding"] == vector_for(f"line {i} words", DEFAULT_DIMENSIONS)
    billed = b.billed(db, batch.id)
    assert len(billed) == 5 and set(billed.values()) == {1}
    # 3 words a line × 5 lines × 0.02 USD per 1M.
    assert sum(row.cost_usd for row in records.ledger(db)) == Decimal("0.0000003")


def test_a_chat_batch_refuses_embedding_lines_and_the_reverse(sdk, upstream, worker, db):
    client, _, _ = sdk
    line = {"custom_id": "x", "method": "POST", "url": "/v1/embeddings", "body": {"model": SMALL, "input": "x"}}
    uploaded = client.files.create(file=("emb.jsonl", b.jsonl([line])), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    done = b.wait_batch(lambda i: client.batches.retrieve(i).model_dump(), batch.id)
    assert done["status"] == "failed" and done["errors"]["data"][0]["code"] == "invalid_url"
    chat_line = b.line("c", model="gpt-3.5-turbo")
    chat_line["url"] = "/v1/embeddings"
    uploaded = client.files.create(file=("chat.jsonl", b.jsonl([chat_line])), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/embeddings", completion_window="24h")
    done = b.wait_batch(lambda i: client.batches.retrieve(i).model_dump(), batch.id)
    (error,) = done["errors"]["data"]
    assert (error["code"], error["param"]) == ("missing_field", "body.input")
    assert records.ledger(db) == []


def test_models_list_shows_embedding_models(sdk):
    client, _, _ = sdk
    assert {SMALL, MISTRAL, "gpt-3.5-turbo"} <= {m.id for m in client.models.list()}
