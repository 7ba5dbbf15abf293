"""The worker → web hand-off contract: typed events on one Redis Stream per job.

The worker appends `Chunk` events while it streams and one final `Done` (after the job's
outcome is stored and billed); cancelling a job that never ran appends `Cancelled`. The web
blocks on XREAD, so the first byte reaches the client as soon as the worker has it. Every
event carries the run number, so a reader can tell a re-run (after a crash) from the run it
followed. `encode()` and `decode()` are the only places that know the wire format.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import redis

from llmproxy.errors import error_object
from llmproxy.jobs.states import JobStatus
from llmproxy.storage.models import Job
from llmproxy.storage.money import money

STREAM_TTL_SECONDS = 3600
# A blocked XREAD must answer well within the client's socket timeout (redis-py 8 defaults to 5 s):
# a read that blocks as long as the timeout races it and fails as "Redis is unavailable".
MAX_BLOCK_MS = 2000
PIPELINE_BATCH = 1000  # events per round trip when many jobs are woken at once


@dataclass(frozen=True)
class Served:
    """Who serves a stream: sent with its first chunk, so the web can set its headers."""

    provider: str
    model: str


@dataclass(frozen=True)
class Chunk:
    """One `chat.completion.chunk` of a streamed answer."""

    data: dict[str, Any]
    served: Served | None = None


@dataclass(frozen=True)
class Done:
    """The job ended and its outcome is stored: everything the waiter needs to answer without the database."""

    status: JobStatus
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    error_status: int | None = None
    cost_usd: str | None = None
    served_model: str | None = None
    served_provider: str | None = None
    attempts: int = 0

    @classmethod
    def of(cls, job: Job) -> Done:
        """The final event of a finished job."""
        return cls(
            status=JobStatus(job.status),
            result=job.result,
            error=job.error,
            error_status=job.error_status,
            cost_usd=money(job.cost_usd),
            served_model=job.served_model,
            served_provider=job.served_provider,
            attempts=len(job.attempts or []),
        )


@dataclass(frozen=True)
class Cancelled:
    """The job was cancelled before any worker ran it (a cancelled job, or a line of a cancelled batch)."""

    error: dict[str, Any]
    error_status: int = 499

    @classmethod
    def job(cls) -> Cancelled:
        """The cancellation of a job by its caller."""
        return cls(error_object("The job was cancelled", code="cancelled"))


Event = Chunk | Done | Cancelled
FINAL_EVENTS = (Done, Cancelled)


@dataclass(frozen=True)
class Received:
    """An event as read from a job's stream: its stream id (the cursor for the next read) and its run."""

    id: str
    run: int
    event: Event


def events_key(job_id: str) -> str:
    """Redis key of a job's event stream."""
    return f"llmproxy:job:{job_id}:events"


def cancel_key(job_id: str) -> str:
    """Redis key set when a job's caller went away or cancelled it."""
    return f"llmproxy:job:{job_id}:cancel"


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def encode(event: Event, *, run: int) -> dict[str, str | int]:
    """The stream entry of an event."""
    if isinstance(event, Chunk):
        fields: dict[str, str | int] = {"kind": "chunk", "run": run, "data": _dumps(event.data)}
        if event.served is not None:
            fields["served"] = _dumps({"provider": event.served.provider, "model": event.served.model})
        return fields
    if isinstance(event, Done):
        data = {
            "status": str(event.status),
            "result": event.result,
            "error": event.error,
            "error_status": event.error_status,
            "cost_usd": event.cost_usd,
            "served_model": event.served_model,
            "served_provider": event.served_provider,
            "attempts": event.attempts,
        }
        return {"kind": "done", "run": run, "data": _dumps(data)}
    return {"kind": "cancelled", "run": run, "data": _dumps({"error": event.error, "error_status": event.error_status})}


def decode(fields: dict[bytes, bytes]) -> tuple[int, Event]:
    """(run, event) of a stream entry written by `encode`."""
    kind = fields[b"kind"].decode()
    run = int(fields[b"run"])
    data = json.loads(fields[b"data"])
    if kind == "chunk":
        served = json.loads(fields[b"served"]) if b"served" in fields else None
        return run, Chunk(data, Served(served["provider"], served["model"]) if served else None)
    if kind == "done":
        return run, Done(**{**data, "status": JobStatus(data["status"])})
    if kind == "cancelled":
        return run, Cancelled(data["error"], data["error_status"])
    raise ValueError(f"unknown hand-off event kind {kind!r}")


def publish(client: redis.Redis, job_id: str, event: Event, *, run: int) -> None:
    """Append an event to the job's stream; the first chunk and the final event also (re)set its TTL."""
    key = events_key(job_id)
    fields = encode(event, run=run)
    if isinstance(event, FINAL_EVENTS) or (isinstance(event, Chunk) and event.served is not None):
        pipe = client.pipeline(transaction=False)  # one round trip for both
        pipe.xadd(key, fields)  # type: ignore[arg-type]  # redis-py's stub wants a dict of its own key type
        pipe.expire(key, STREAM_TTL_SECONDS)
        pipe.execute()
    else:
        client.xadd(key, fields)  # type: ignore[arg-type]


def publish_many(client: redis.Redis, events: list[tuple[str, int, Event]]) -> None:
    """Append one event to each of many jobs' streams (job id, run, event): one round trip per 1,000."""
    for start in range(0, len(events), PIPELINE_BATCH):
        pipe = client.pipeline(transaction=False)
        for job_id, run, event in events[start : start + PIPELINE_BATCH]:
            pipe.xadd(events_key(job_id), encode(event, run=run))  # type: ignore[arg-type]
            pipe.expire(events_key(job_id), STREAM_TTL_SECONDS)
        pipe.execute()


def publish_cancelled(client: redis.Redis, lines: list[tuple[str, int]]) -> None:
    """Wake whoever waits on these jobs (id, run), cancelled before they ran: one round trip per 1,000."""
    cancelled = Cancelled.job()
    publish_many(client, [(job_id, run, cancelled) for job_id, run in lines])


def read(client: redis.Redis, job_id: str, *, after: str = "0", block_ms: int = 0, count: int = 100) -> list[Received]:
    """Events after `after`, blocking up to block_ms (0 = do not block; at most MAX_BLOCK_MS) for the first one.

    Callers wait longer by calling again until their own deadline (see `follow`).
    """
    block = min(block_ms, MAX_BLOCK_MS) if block_ms else None
    reply = cast(list[Any], client.xread({events_key(job_id): after}, count=count, block=block))
    received: list[Received] = []
    for _key, entries in reply or []:
        for entry_id, fields in entries:
            run, event = decode(fields)
            received.append(Received(entry_id.decode() if isinstance(entry_id, bytes) else entry_id, run, event))
    return received


def follow(
    client: redis.Redis, job_id: str, deadline: float, *, idle: float | None = None
) -> Iterator[Received | None]:
    """A job's events as they arrive (read in batches); yields None once if the deadline passes first.

    `deadline` is a `time.monotonic()` value. With `idle`, each event moves the deadline to
    `idle` seconds later: a stream is cut only when it stalls, never while chunks flow.
    """
    after = "0"
    while (remaining := deadline - time.monotonic()) > 0:
        for received in read(client, job_id, after=after, block_ms=max(1, int(remaining * 1000))):
            after = received.id
            if idle is not None:
                deadline = time.monotonic() + idle
            yield received
    yield None


def wait_for_end(client: redis.Redis, job_id: str, seconds: float) -> bool:
    """Block until the job's final event or `seconds` pass (no database polling); True if it ended."""
    for received in follow(client, job_id, time.monotonic() + seconds):
        if received is None:
            return False
        if isinstance(received.event, FINAL_EVENTS):
            return True
    return False


def request_cancel(client: redis.Redis, job_id: str, ttl: int = STREAM_TTL_SECONDS) -> None:
    """Ask the worker running this job to stop (client gone or cancelled)."""
    client.set(cancel_key(job_id), 1, ex=ttl)


def cancel_requested(client: redis.Redis, job_id: str) -> bool:
    """Whether someone asked this job to stop."""
    return bool(client.exists(cancel_key(job_id)))


def usage_chunk(result: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's last stream chunk (no choices, the usage) for a completed stream's result."""
    return {
        "id": result.get("id"),
        "object": "chat.completion.chunk",
        "created": result.get("created"),
        "model": result.get("model"),
        "choices": [],
        "usage": result.get("usage"),
    }
