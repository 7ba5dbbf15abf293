"""Hand-off between worker and web over Redis Streams: one stream of events per job.

The worker appends `chunk` events while streaming and one final `done` event
(after the job row is committed); the web blocks on XREAD, so the first byte
reaches the client as soon as the worker has it. Each event carries the run
number, so the web can tell a re-run (after a crash) from the run it followed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import redis

from llmproxy.storage.models import Job

CHUNK = "chunk"
DONE = "done"
STREAM_TTL_SECONDS = 3600
# A blocked XREAD must answer well within the client's socket timeout (redis-py 8 defaults to 5 s):
# a read that blocks as long as the timeout races it and fails as "Redis is unavailable".
MAX_BLOCK_MS = 2000


@dataclass(frozen=True)
class Event:
    """One hand-off event."""

    id: str
    kind: str
    run: int
    data: dict[str, Any]
    meta: dict[str, Any] | None = None


def events_key(job_id: str) -> str:
    """Redis key of a job's event stream."""
    return f"llmproxy:job:{job_id}:events"


def cancel_key(job_id: str) -> str:
    """Redis key set when a job's caller went away or cancelled it."""
    return f"llmproxy:job:{job_id}:cancel"


def _fields(kind: str, run: int, data: dict, meta: dict | None = None) -> dict:
    # One event's stream entry: what read() below decodes.
    fields = {"kind": kind, "run": run, "data": json.dumps(data, separators=(",", ":"))}
    if meta:
        fields["meta"] = json.dumps(meta, separators=(",", ":"))
    return fields


def publish(client: redis.Redis, job_id: str, kind: str, data: dict, *, run: int, meta: dict | None = None) -> None:
    """Append an event to the job's stream; the first chunk and the final event also (re)set its TTL."""
    key = events_key(job_id)
    fields = _fields(kind, run, data, meta)
    if kind == DONE or meta:
        pipe = client.pipeline(transaction=False)  # one round trip for both
        pipe.xadd(key, fields)
        pipe.expire(key, STREAM_TTL_SECONDS)
        pipe.execute()
    else:
        client.xadd(key, fields)


def publish_cancelled(client: redis.Redis, lines: list[tuple[str, int]]) -> None:
    """Wake whoever long-polls these jobs (id, run) that were cancelled without running: one round trip per 1,000."""
    for start in range(0, len(lines), 1000):
        pipe = client.pipeline(transaction=False)
        for job_id, run in lines[start : start + 1000]:
            pipe.xadd(events_key(job_id), _fields(DONE, run, {"status": "cancelled"}))
            pipe.expire(events_key(job_id), STREAM_TTL_SECONDS)
        pipe.execute()


def read(client: redis.Redis, job_id: str, *, after: str = "0", block_ms: int = 0, count: int = 100) -> list[Event]:
    """Events after `after`, blocking up to block_ms (0 = do not block; at most MAX_BLOCK_MS) for the first one.

    Callers wait longer by calling again until their own deadline.
    """
    block = min(block_ms, MAX_BLOCK_MS) if block_ms else None
    reply = client.xread({events_key(job_id): after}, count=count, block=block)
    events: list[Event] = []
    for _key, entries in reply or []:
        for entry_id, fields in entries:
            events.append(
                Event(
                    id=entry_id.decode() if isinstance(entry_id, bytes) else entry_id,
                    kind=fields[b"kind"].decode(),
                    run=int(fields[b"run"]),
                    data=json.loads(fields[b"data"]),
                    meta=json.loads(fields[b"meta"]) if b"meta" in fields else None,
                )
            )
    return events


def request_cancel(client: redis.Redis, job_id: str, ttl: int = STREAM_TTL_SECONDS) -> None:
    """Ask the worker running this job to stop (client gone or cancelled)."""
    client.set(cancel_key(job_id), 1, ex=ttl)


def cancel_requested(client: redis.Redis, job_id: str) -> bool:
    """Whether someone asked this job to stop."""
    return bool(client.exists(cancel_key(job_id)))


def usage_chunk(result: dict) -> dict:
    """OpenAI's last stream chunk (no choices, the usage) for a completed stream's result."""
    return {
        "id": result.get("id"),
        "object": "chat.completion.chunk",
        "created": result.get("created"),
        "model": result.get("model"),
        "choices": [],
        "usage": result.get("usage"),
    }


def done_event(job: Job) -> dict:
    """What the waiting web process needs to answer without reading the database again."""
    return {
        "status": job.status,
        "result": job.result,
        "error": job.error,
        "error_status": job.error_status,
        "cost_usd": None if job.cost_usd is None else str(job.cost_usd),
        "served_model": job.served_model,
        "served_provider": job.served_provider,
        "attempts": len(job.attempts or []),
    }
