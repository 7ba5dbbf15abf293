"""In-flight jobs in Redis: created, claimed, leased, finished and cancelled, each by one atomic script.

Redis layout:
  llmproxy:job:{id}:live   hash  job (static JSON: key, model, queue, request, ...), queue, status, run, lease (ms),
                                 started_at (ms), final (outcome JSON, once ended). Expires LIVE_TTL after
                                 the last change; once the writer stored the job only `status` stays.
  llmproxy:jobs:leases     zset  job id -> when the sweeper looks at it next (ms): its lease's end, or a
                                 lease after it re-sent the job. A queued interactive job has a lease
                                 too, so a message that died with the worker that prefetched it is re-sent.
  llmproxy:records         stream  ended jobs for the writer (llmproxy.jobs.records).

An interactive job lives only here until it ends; the writer then stores its row and ledger
entry. A stored job (async job, batch line) gets its live state when a worker first claims it.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

import redis

from llmproxy.catalog.snapshots import VERSION_KEY
from llmproxy.jobs import events
from llmproxy.jobs.events import Cancelled, Done
from llmproxy.jobs.live_job import LiveJob
from llmproxy.jobs.live_lua import CANCEL_LUA, CLAIM_LUA, CREATE_LUA, DUE_LUA, FINISH_LUA
from llmproxy.jobs.outcome import Outcome
from llmproxy.jobs.records import RECORDS_STREAM, dumps, encode_charge, encode_final, from_epoch_ms
from llmproxy.jobs.states import JobStatus
from llmproxy.jobs.timing import ms
from llmproxy.jsontypes import JSON
from llmproxy.limits import reservations
from llmproxy.luascript import LuaScript
from llmproxy.storage.models import Job

log = logging.getLogger(__name__)

LIVE_TTL_SECONDS = events.STREAM_TTL_SECONDS
RECORDED_TTL_SECONDS = 300  # a recorded job's status outlives a worker's stale read of its row
LEASES_KEY = "llmproxy:jobs:leases"
_PREFIX, _SUFFIX = "llmproxy:job:", ":live"

_CREATE, _CLAIM = LuaScript(CREATE_LUA), LuaScript(CLAIM_LUA)
_FINISH, _CANCEL, _DUE = LuaScript(FINISH_LUA), LuaScript(CANCEL_LUA), LuaScript(DUE_LUA)


def live_key(job_id: str) -> str:
    """Redis key of a job's live state."""
    return f"{_PREFIX}{job_id}{_SUFFIX}"


def batch_ending_key(batch_id: str) -> str:
    """Redis key that, while it exists, keeps every line of the batch from starting (it is being cancelled)."""
    return f"llmproxy:batch:{batch_id}:ending"


def mark_batch_ending(client: redis.Redis, batch_id: str, *, seconds: float) -> None:
    """From now on no line of this batch starts: set before its queued rows are cancelled (see llmproxy.batches)."""
    client.set(batch_ending_key(batch_id), 1, ex=max(1, int(seconds)))


def started(client: redis.Redis, job_ids: list[str]) -> set[str]:
    """Which of these stored jobs a worker has claimed (running, or ended and not yet recorded)."""
    pipe = client.pipeline(transaction=False)
    for job_id in job_ids:
        pipe.hexists(live_key(job_id), "run")  # a claim sets `run`; a cancel's tombstone does not
    return {job_id for job_id, claimed in zip(job_ids, pipe.execute(), strict=True) if claimed}


def create(client: redis.Redis, job: LiveJob, *, lease_seconds: float) -> None:
    """Make an interactive job live and queued, with a lease that covers the time to be claimed."""
    _CREATE(
        client,
        [live_key(job.id), LEASES_KEY],
        [job.id, job.dumps(), job.queue, ms(lease_seconds), ms(LIVE_TTL_SECONDS)],
    )


def discard(client: redis.Redis, job_id: str) -> None:
    """Forget a job that was never handed to a worker (its task could not be sent)."""
    pipe = client.pipeline(transaction=False)
    pipe.delete(live_key(job_id))
    pipe.zrem(LEASES_KEY, job_id)
    pipe.execute()


@dataclass(frozen=True)
class Claim:
    """A claimed run: the job as the executor reads it and this run's number; read in the same call, whether
    its caller already asked it to stop and the configuration version (no round trip of their own)."""

    job: Job
    run: int
    cancel_asked: bool = False
    config_version: bytes | None = None


def claim(client: redis.Redis, job_id: str, *, lease_seconds: float, stored: Job | None = None) -> Claim | str:
    """Take the job for one run (queued, or its last run's lease lapsed); else the status that kept us out.

    `stored` is the job's row for a job that lives in the database: its live state is created
    from it on the first claim. Without it, a job with no live state is 'missing'.
    """
    static = (LiveJob.of_row(stored).dumps(), stored.queue, stored.run_count) if stored is not None else ("", "", 0)
    batch_id = stored.batch_id if stored is not None else None
    reply = _CLAIM(
        client,
        [live_key(job_id), LEASES_KEY, batch_ending_key(batch_id or ""), events.cancel_key(job_id), VERSION_KEY],
        [job_id, ms(lease_seconds), ms(LIVE_TTL_SECONDS), *static],
    )
    if reply[0] != b"claimed":
        return cast(bytes, reply[0]).decode()
    run = int(reply[1])
    job = LiveJob.loads(job_id, reply[2]).as_job(status=JobStatus.IN_PROGRESS, run=run)
    return Claim(job, run, cancel_asked=bool(reply[3]), config_version=reply[4] if len(reply) > 4 else None)


def finish(client: redis.Redis, job: Job, run: int, outcome: Outcome, *, settle: bool) -> bool:
    """End our run: settle the reservation, store the outcome live, queue its record, wake the waiter.

    One script, so it happens whole or not at all, and only if this run still owns the job.
    False (nothing changed in Redis) when another run took it over. Fills in `job` with the outcome either way.
    """
    completed_ms = ms(time.time())
    final = encode_final(outcome, completed_ms)
    _apply(job, json.loads(final), outcome.status)
    if settle:
        used = outcome.usage.prompt_tokens + outcome.usage.completion_tokens if outcome.usage else 0
        limit_keys, settle_args = reservations.settle_call(
            key_id=job.api_key_id,
            request_id=job.id,
            actual_tokens=used,
            actual_cost_usd=outcome.cost_usd or Decimal(0),
        )
    else:
        limit_keys, settle_args = list(reservations.limit_keys(job.api_key_id)), ["", job.id, "none", 0, 0, 0]
    done = events.encode(Done.of(job), run=run)
    return bool(
        _FINISH(
            client,
            [*limit_keys, live_key(job.id), LEASES_KEY, RECORDS_STREAM, events.events_key(job.id)],
            [
                *settle_args,
                job.id,
                run,
                outcome.status,
                final,
                encode_charge(outcome),
                events.STREAM_TTL_SECONDS,
                ms(LIVE_TTL_SECONDS),
                *_flat(done),
            ],
        )
    )


def _flat(fields: dict[str, str | int]) -> list[str | int]:
    return [item for pair in fields.items() for item in pair]


def _apply(job: Job, final: JSON, status: str) -> None:
    job.status = status
    job.result, job.error, job.error_status = final["result"], final["error"], final["error_status"]
    job.attempts, job.usage = final["attempts"], final["usage"]
    job.cost_usd = Decimal(final["cost_usd"]) if final["cost_usd"] is not None else None
    job.served_model, job.served_provider = final["served_model"], final["served_provider"]
    job.completed_at = from_epoch_ms(final["completed_at"])


def cancel(client: redis.Redis, job_id: str, *, stored: bool) -> str:
    """Cancel a queued job at once (recorded, waiter woken) or ask a running one to stop; see CANCEL_LUA.

    Returns the status the job had: 'queued', 'in_progress', 'missing' or a final status.
    """
    cancelled = Cancelled.job()
    final = dumps(
        {
            "result": None,
            "error": cancelled.error,
            "error_status": cancelled.error_status,
            "attempts": [],
            "usage": None,
            "cost_usd": None,
            "served_model": None,
            "served_provider": None,
            "completed_at": ms(time.time()),
        }
    )
    reply = _CANCEL(
        client,
        [live_key(job_id), LEASES_KEY, RECORDS_STREAM, events.events_key(job_id), events.cancel_key(job_id)],
        [
            job_id,
            final,
            events.STREAM_TTL_SECONDS,
            ms(LIVE_TTL_SECONDS),
            1 if stored else 0,
            *_flat(events.encode(cancelled, run=0)),
        ],
    )
    return cast(bytes, reply).decode()


def read(client: redis.Redis, job_id: str) -> Job | None:
    """The job as its live state has it; None if it has none (queued stored job, or already recorded)."""
    raw: dict[bytes, bytes] = cast(Any, client.hgetall(live_key(job_id)))
    return _job_of(job_id, raw)


def read_many(client: redis.Redis, job_ids: list[str]) -> dict[str, Job]:
    """`read` for several jobs in one round trip: the ones that have a live state."""
    pipe = client.pipeline(transaction=False)
    for job_id in job_ids:
        pipe.hgetall(live_key(job_id))
    found = {job_id: _job_of(job_id, raw) for job_id, raw in zip(job_ids, pipe.execute(), strict=True)}
    return {job_id: job for job_id, job in found.items() if job is not None}


def _job_of(job_id: str, raw: dict[bytes, bytes]) -> Job | None:
    if b"job" not in raw:
        return None
    static = LiveJob.loads(job_id, raw[b"job"])
    final = json.loads(raw[b"final"]) if b"final" in raw else None
    started = raw.get(b"started_at")
    return static.as_job(
        status=raw[b"status"].decode(),
        run=int(raw.get(b"run", b"0")),
        started_at_ms=int(started) if started else None,
        final=final,
    )


def due(client: redis.Redis, *, lease_seconds: float, limit: int = 500) -> list[tuple[str, str]]:
    """(job id, queue) of jobs whose lease lapsed, each given a new lease: the sweeper re-sends them."""
    reply = _DUE(client, [LEASES_KEY], [_PREFIX, _SUFFIX, ms(lease_seconds), limit])
    items = [v.decode() for v in reply]
    return list(zip(items[::2], items[1::2], strict=True))


def forget_recorded(client: redis.Redis, job_ids: list[str]) -> None:
    """After the writer stored these jobs: drop their live copies, keeping only the status for a while."""
    pipe = client.pipeline(transaction=False)
    for job_id in job_ids:
        pipe.hdel(live_key(job_id), "job", "final", "queue")
        pipe.expire(live_key(job_id), RECORDED_TTL_SECONDS)
    pipe.execute()
