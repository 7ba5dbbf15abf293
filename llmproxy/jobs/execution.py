"""Execute one job end to end: claim it, run its chain, bill it once, hand the result to the waiter."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from decimal import Decimal

import redis
from sqlalchemy.orm import sessionmaker

from llmproxy.catalog.snapshots import Snapshots
from llmproxy.config import Settings
from llmproxy.jobs import events
from llmproxy.jobs.finish import finish_job
from llmproxy.jobs.lease import LeaseKeeper
from llmproxy.jobs.outcome import Outcome, outcome_of
from llmproxy.jobs.pacing import _refuse, pace
from llmproxy.jobs.queues import Queue
from llmproxy.jobs.routing import Step, run_chain
from llmproxy.jobs.states import FINAL_JOB_STATUSES, JobStatus
from llmproxy.jobs.steps import build_steps, retry_policy
from llmproxy.jobs.store import claim_job, get_job
from llmproxy.limits import reservations
from llmproxy.ops import metrics
from llmproxy.storage.engine import session_scope

log = logging.getLogger(__name__)


def _throttled(check: Callable[[], bool], every: float = 0.25) -> Callable[[], bool]:
    last = [0.0]
    state = [False]

    def should_stop() -> bool:
        now = time.monotonic()
        if not state[0] and now - last[0] >= every:
            last[0] = now
            state[0] = check()
        return state[0]

    return should_stop


def execute_job(
    job_id: str,
    *,
    session_factory: sessionmaker,
    redis_client: redis.Redis,
    settings: Settings,
    queue: str | None = None,
    snapshots: Snapshots | None = None,
    sleep: Callable[[float], None] = time.sleep,
    counters: metrics.Counters | None = None,
) -> str | None:
    """Run a job if it is ours to run; return its final status, or None when another run owns it.

    Queued jobs of the batch queue are paced first: they raise Deferred until
    their key has capacity, instead of failing with 429.
    """
    snapshots = snapshots or Snapshots(0)
    snapshots.sync(redis_client)
    with session_scope(session_factory) as session:
        # Interactive jobs were admitted by the web; others are paced here, before they are claimed.
        pending = get_job(session, job_id) if queue != Queue.INTERACTIVE else None
        if pending is not None and pending.queue == Queue.BATCH and pending.status == JobStatus.QUEUED:
            refusal = pace(session, redis_client, pending, settings)
            if refusal is not None:
                return _refuse(session_factory, redis_client, pending, refusal, settings)
        job = claim_job(session, job_id, lease_seconds=settings.job_lease_seconds)
        if job is None:
            existing = get_job(session, job_id)
            if existing is not None and existing.status in FINAL_JOB_STATUSES:
                # A redelivered task for a finished job: make sure the waiter has its answer.
                events.publish(redis_client, job_id, events.DONE, events.done_event(existing), run=existing.run_count)
            return None
        run = job.run_count
        steps = build_steps(session, job, settings, snapshots)
    started = time.monotonic()
    stop = _throttled(lambda: events.cancel_requested(redis_client, job_id))
    announced = []

    def emit(chunk: dict, step: Step) -> None:
        # The first chunk says who serves the stream, so the web can set its headers.
        meta = None if announced else {"provider": step.provider, "model": step.model}
        announced.append(True)
        events.publish(redis_client, job_id, events.CHUNK, chunk, run=run, meta=meta)

    with LeaseKeeper(session_factory, job_id, run, settings.job_lease_seconds):
        chain = run_chain(
            steps,
            job.request,
            stream=job.stream,
            policy=retry_policy(settings),
            emit=emit,
            should_stop=stop,
            sleep=sleep,
        )
    outcome = outcome_of(job, chain, started)
    with session_scope(session_factory) as session:
        if not finish_job(session, job, run, outcome):
            log.info("job %s finished by another run; this run's result is dropped", job_id)
            return None
    try:
        # After the spend is committed: swap the reservation for the real usage (frees unused tokens now).
        used = outcome.usage.prompt_tokens + outcome.usage.completion_tokens if outcome.usage else 0
        reservations.settle(
            redis_client,
            key_id=job.api_key_id,
            request_id=job_id,
            actual_tokens=used,
            actual_cost_usd=outcome.cost_usd or Decimal(0),
        )
        if (
            job.stream
            and outcome.status == JobStatus.COMPLETED
            and outcome.usage is not None
            and outcome.usage.estimated
        ):
            # The upstream streamed no usage: a caller who asked for it (stream_options.include_usage)
            # gets our count, as OpenAI would send it; the web drops this chunk for everyone else.
            events.publish(redis_client, job_id, events.CHUNK, events.usage_chunk(outcome.result), run=run)
    finally:
        # The job is stored and billed: whatever failed above, the waiter must get its answer.
        events.publish(redis_client, job_id, events.DONE, events.done_event(job), run=run)
    _record_metrics(redis_client, counters, outcome)  # after the answer: nobody waits for the counters
    return job.status


def _record_metrics(client: redis.Redis, counters: metrics.Counters | None, outcome: Outcome) -> None:
    # Without the process's counters (a direct call), send this job's at once.
    target = counters or metrics.Counters(client, interval=None)
    try:
        metrics.record_job(
            target,
            attempts=outcome.attempts,
            model=outcome.served_model,
            prompt_tokens=outcome.usage.prompt_tokens if outcome.usage else 0,
            completion_tokens=outcome.usage.completion_tokens if outcome.usage else 0,
            cost_usd=outcome.cost_usd,
            latency_ms=outcome.latency_ms,
        )
        if counters is None:
            target.flush()
    except redis.RedisError:  # the job is done and billed; a lost metric must not redo it
        log.warning("could not record job metrics", exc_info=True)
