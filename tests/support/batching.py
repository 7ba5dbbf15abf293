"""Batch test helpers: input files, submitting over HTTP, reading results and what the ledger billed."""

from __future__ import annotations

import io
import json

import requests
from sqlalchemy import func, select

from llmproxy.batches import files, store
from llmproxy.devtools.waiting import wait_for
from llmproxy.storage.engine import session_scope
from llmproxy.storage.models import ApiKey, Job, UsageEntry

FINAL = ("completed", "failed", "expired", "cancelled")


def line(custom_id: str, model: str = "gpt-3.5-turbo", content: str | None = None, **body) -> dict:
    """One input line: a chat completion request to /v1/chat/completions."""
    messages = [{"role": "user", "content": content or f"request {custom_id}"}]
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": model, "messages": messages, **body},
    }


def jsonl(lines: list) -> bytes:
    """A JSONL file of these lines (dicts are dumped, strings written as they are)."""
    return "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines).encode()


def file_of(n: int, prefix: str = "req", **kwargs) -> bytes:
    """A file of n valid lines, custom_ids prefix-0 … prefix-(n-1)."""
    return jsonl([line(f"{prefix}-{i}", **kwargs) for i in range(n)])


def upload_file(client, secret: str, content: bytes, purpose: str = "batch", name: str = "in.jsonl", **kwargs):
    """POST /v1/files through a Flask test client (multipart, as the SDK sends it); the response."""
    return client.post(
        "/v1/files",
        headers={"Authorization": f"Bearer {secret}"},
        content_type="multipart/form-data",
        data={"purpose": purpose, "file": (io.BytesIO(content), name)},
        **kwargs,
    )


def create_batch(client, secret: str, content: bytes, **fields):
    """Upload `content` and POST /v1/batches for it through a Flask test client; the batch response."""
    up = upload_file(client, secret, content)
    assert up.status_code == 200, up.json
    body = {"input_file_id": up.json["id"], "endpoint": "/v1/chat/completions", "completion_window": "24h", **fields}
    return client.post("/v1/batches", headers={"Authorization": f"Bearer {secret}"}, json=body)


def submit(base_url: str, secret: str, content: bytes, **fields) -> dict:
    """Upload the file and create the batch over HTTP; return the batch object."""
    headers = {"Authorization": f"Bearer {secret}"}
    up = requests.post(
        f"{base_url}/v1/files",
        headers=headers,
        data={"purpose": "batch"},
        files={"file": ("in.jsonl", content)},
        timeout=60,
    )
    assert up.status_code == 200, up.text
    body = {"input_file_id": up.json()["id"], "endpoint": "/v1/chat/completions", "completion_window": "24h", **fields}
    created = requests.post(f"{base_url}/v1/batches", headers=headers, json=body, timeout=120)
    assert created.status_code == 200, created.text
    return created.json()


def wait_batch(get, batch_id: str, statuses=FINAL, timeout: float = 60.0) -> dict:
    """Poll `get(batch_id)` (a function returning the batch object) until its status is one of `statuses`."""

    def ended():
        batch = get(batch_id)
        return batch if batch["status"] in statuses else None

    return wait_for(ended, timeout=timeout, interval=0.2, message=f"batch {batch_id} to reach {statuses}")


def parse(content: bytes | None) -> list[dict]:
    """The JSON lines of a result file."""
    return [json.loads(x) for x in (content or b"").splitlines() if x.strip()]


def billed(session_factory, batch_id: str) -> dict[str, int]:
    """Ledger rows per job of the batch (job id → count), for the jobs that have any."""
    with session_scope(session_factory) as session:
        rows = session.execute(
            select(UsageEntry.job_id, func.count())
            .join(Job, Job.id == UsageEntry.job_id)
            .where(Job.batch_id == batch_id)
            .group_by(UsageEntry.job_id)
        )
        return {job_id: count for job_id, count in rows}  # noqa: C416 - a Result has keys(): dict() would misread it


def batch_jobs(session_factory, batch_id: str) -> list[Job]:
    """The batch's job rows."""
    with session_scope(session_factory) as session:
        return list(session.scalars(select(Job).where(Job.batch_id == batch_id)))


def check_results(batch: dict, output: list[dict], errors: list[dict], custom_ids: set[str]) -> None:
    """Every custom_id exactly once across both files; lines well-formed; counts agree with the files."""
    seen = [x["custom_id"] for x in output + errors]
    assert len(seen) == len(set(seen)), "a custom_id appears twice"
    assert set(seen) == custom_ids
    for x in output:
        assert x["id"].startswith("batch_req_") and x["error"] is None
        assert x["response"]["status_code"] == 200 and x["response"]["request_id"].startswith("job_")
        assert x["response"]["body"]["object"] == "chat.completion"
    for x in errors:
        assert (x["response"] is None) != (x["error"] is None)
        if x["response"] is not None:
            assert x["response"]["status_code"] >= 400 and "error" in x["response"]["body"]
    counts = batch["request_counts"]
    assert counts["total"] == len(custom_ids) and counts["completed"] == len(output)
    assert counts["failed"] == sum(1 for x in errors if x["response"] is not None)


def stored_batch(db, settings, key_id: str, content: bytes) -> str:
    """A `validating` batch stored through llmproxy, with no task sent (as if its message was lost)."""
    with session_scope(db) as session:
        source = files.upload_file(
            session,
            api_key_id=key_id,
            purpose="batch",
            filename="in.jsonl",
            source=io.BytesIO(content),
            size=len(content),
            settings=settings,
        )
        return store.create_batch(
            session,
            key=session.get(ApiKey, key_id),
            input_file_id=source.id,
            endpoint="/v1/chat/completions",
            completion_window="24h",
            metadata=None,
            settings=settings,
        ).id
