"""Execute one job end to end: claim it, run its chain, bill it once, hand the result to the waiter."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import redis
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from llmproxy.catalog.snapshots import Snapshots
from llmproxy.config import Settings
from llmproxy.errors import dependency_unavailable
from llmproxy.jobs import events, live
from llmproxy.jobs.deployment_choice import DeploymentRouter
from llmproxy.jobs.events import Chunk, Done, Served
from llmproxy.jobs.lease import LeaseRenewer
from llmproxy.jobs.outcome import Outcome, outcome_of, record_outcome_metrics
from llmproxy.jobs.pacing import deployment_router, pace
from llmproxy.jobs.queues import Queue
from llmproxy.jobs.routing import Step, run_chain
from llmproxy.jobs.states import FINAL_JOB_STATUSES, JobStatus
from llmproxy.jobs.steps import build_steps, job_key, retry_policy
from llmproxy.jobs.stopping import StopCheck
from llmproxy.jobs.store import read_job, read_jobs
from llmproxy.keys import key_state
from llmproxy.operations import Operation
from llmproxy.responses.native import native_request
from llmproxy.responses.running import chat_request, event_translator, is_response
from llmproxy.responses.stream_events import EventTranslator
from llmproxy.storage.engine import session_scope
from llmproxy.storage.models import Job
from llmproxy.telemetry.metrics import Counters

log = logging.getLogger(__name__)
CANCEL_CHECK_SECONDS = 0.25  # how often a running job looks at its cancel flag and its key's state (one MGET)
# A prefetched row older than this is read again: a recorded job's live status outlives any such read (see
# live.RECORDED_TTL_SECONDS), so a stale "queued" can never start a job that has already been recorded.
ROW_FRESH_SECONDS = live.RECORDED_TTL_SECONDS / 5


class PrefetchedRows:
    """The rows of a batch message's lines, read in one SELECT; each is handed out once, while it is fresh."""

    def __init__(
        self, session_factory: sessionmaker[Session], job_ids: list[str], clock: Callable[[], float] = time.monotonic
    ) -> None:
        with session_scope(session_factory) as session:
            self._rows = read_jobs(session, job_ids)
        self._clock, self._read_at = clock, clock()

    def take(self, job_id: str) -> Job | None:
        """The job's row if it was read less than ROW_FRESH_SECONDS ago; else None (execute_job reads it)."""
        row = self._rows.pop(job_id, None)
        return row if self._clock() - self._read_at < ROW_FRESH_SECONDS else None


def execute_job(
    job_id: str,
    *,
    session_factory: sessionmaker[Session],
    redis_client: redis.Redis,
    settings: Settings,
    queue: str | None = None,
    snapshots: Snapshots | None = None,
    sleep: Callable[[float], None] = time.sleep,
    counters: Counters | None = None,
    leases: LeaseRenewer | None = None,
    row: Job | None = None,
) -> str | None:
    """Run a job if it is ours to run; return its final status, or None when another run owns it.

    Every job runs from its live state in Redis (see llmproxy.jobs.live); its record goes to the
    database through the writer. Queued jobs of the batch queue are paced first: they raise
    Deferred until their key has capacity, instead of failing with 429. `row` is the stored job's
    row if the caller has just read it (see PrefetchedRows); else it is read here.
    """
    snapshots = snapshots or Snapshots(0)
    leases = leases or LeaseRenewer(redis_client, settings.job_lease_seconds, settings.reservation_ttl_seconds)
    stored, refusal, pinned = None, None, None
    if queue != Queue.INTERACTIVE:
        # A stored job (async job, batch line): its row says what to run, and whether it still should.
        with session_scope(session_factory) as session:
            stored = row or read_job(session, job_id)
            if stored is None:
                return None
            if stored.status in FINAL_JOB_STATUSES:
                # A redelivered or re-sent task for a job already recorded: make sure its waiter has the answer.
                events.publish(redis_client, job_id, Done.of(stored), run=stored.run_count)
                return None
            if stored.queue == Queue.BATCH:
                snapshots.sync(redis_client)  # pacing reads the key before the claim
                refusal, pinned = pace(session, redis_client, stored, settings, snapshots)
    claimed = live.claim(redis_client, job_id, lease_seconds=settings.job_lease_seconds, stored=stored)
    if isinstance(claimed, str):
        _answer_again(session_factory, redis_client, job_id, claimed)
        return None
    job, run = claimed.job, claimed.run
    snapshots.observe(claimed.config_version)  # read by the claim: no round trip of its own
    settle_refusal = False  # pacing refused it before reserving anything
    if refusal is None:
        try:
            with session_scope(session_factory) as session:  # touches the database only when the catalog cache is cold
                key = job_key(session, job.api_key_id, snapshots)
                refusal = key_state.refusal(key, job.model)  # revoked, or its model no longer allowed: nothing sent
                steps = [] if refusal else build_steps(session, job, settings, snapshots, key=key)
        except (OperationalError, InterfaceError) as exc:
            if stored is not None:
                raise  # nobody waits on it: its lease lapses and the sweeper re-sends it once the database is back
            # Its caller is waiting, and would wait out the whole outage: answer 503 now (nothing sent, nothing billed).
            log.warning("job %s answered 503: the database failed (%s)", job_id, exc.__class__.__name__)
            refusal = dependency_unavailable("The database")
        settle_refusal = True  # what the web or pacing reserved for it is released
    if refusal is not None:
        # It cannot run (budget spent, too large, key revoked, model not allowed, no database): failed, not billed.
        refused = Outcome(status=JobStatus.FAILED, error=refusal.body()["error"], error_status=refusal.status)
        return job.status if live.finish(redis_client, job, run, refused, settle=settle_refusal) else None
    lease = leases.holding(job_id, run, key_id=job.api_key_id)  # renews the job's cost reservation too
    should_stop = StopCheck(redis_client, job, every=CANCEL_CHECK_SECONDS, cancel_asked=claimed.cancel_asked)
    nap = should_stop.sleep(sleep)  # a retry's backoff ends early once the job must stop
    router = deployment_router(redis_client, job, settings, pinned=pinned)
    outcome, translator = _run(
        job, run, steps, router=router, client=redis_client, settings=settings, sleep=nap, lease=lease, stop=should_stop
    )
    outcome = should_stop.outcome(outcome)  # stopped by its key: failed with the key's refusal, billed what it used
    if translator is None:
        _send_usage_chunk(redis_client, job, run, outcome)
    elif outcome.status == JobStatus.COMPLETED and outcome.result is not None:
        for event in translator.close(outcome.result):  # the items done, then the stored response
            events.publish(redis_client, job.id, Chunk(event), run=run)
    # No database write before the caller has the answer: the writer stores the record (and updates a stored row).
    if not live.finish(redis_client, job, run, outcome, settle=True):
        log.info("job %s finished by another run; this run's result is dropped", job_id)
        return None
    record_outcome_metrics(redis_client, counters, outcome)  # after the answer: nobody waits for the counters
    return job.status


def _answer_again(session_factory: sessionmaker[Session], client: redis.Redis, job_id: str, status: str) -> None:
    """A task for a job that already ended (a redelivered or re-sent message): make sure its waiter has the answer."""
    if status not in FINAL_JOB_STATUSES and status != "missing":
        return  # another run has it
    job = live.read(client, job_id)
    if job is None:
        with session_scope(session_factory) as session:
            job = read_job(session, job_id)
    if job is not None and job.status in FINAL_JOB_STATUSES:
        events.publish(client, job_id, Done.of(job), run=job.run_count)


def _run(
    job: Job,
    run: int,
    steps: list[Step],
    *,
    router: DeploymentRouter,
    client: redis.Redis,
    settings: Settings,
    sleep: Callable[[float], None],
    lease: AbstractContextManager[object],
    stop: Callable[[], bool],
) -> tuple[Outcome, EventTranslator | None]:
    """Run the chain under a renewed lease, relaying stream chunks as they come (a response's as its events)."""
    started = time.monotonic()
    announced = False
    translator: EventTranslator | None = None

    def emit(chunk: dict[str, Any], step: Step) -> None:
        # The first chunk says who serves the stream, so the web can set its headers.
        nonlocal announced, translator
        served = None if announced else Served(provider=step.provider, model=step.model)
        announced = True
        if not is_response(job):
            events.publish(client, job.id, Chunk(chunk, served), run=run)
            return
        translator = translator or event_translator(job, step.model)
        for event in translator.add(chunk):
            events.publish(client, job.id, Chunk(event, served), run=run)
            served = None

    with lease:
        chain = run_chain(
            steps,
            chat_request(job),
            stream=job.stream,
            policy=retry_policy(settings),
            emit=emit,
            should_stop=stop,
            sleep=sleep,
            job_id=job.id,
            output_cap=settings.default_max_tokens,  # what admission reserved per choice when no cap was given
            operation=Operation.CHAT if is_response(job) else job.operation,
            router=router,
            native=native_request(job.request, output_cap=settings.default_max_tokens) if is_response(job) else None,
        )
    return outcome_of(job, chain, started), translator


def _send_usage_chunk(client: redis.Redis, job: Job, run: int, outcome: Outcome) -> None:
    """The upstream streamed no usage: a caller who asked for it (stream_options.include_usage) gets our count,
    as OpenAI would send it, before the final event; the web drops this chunk for everyone else."""
    usage = outcome.usage
    if job.stream and outcome.status == JobStatus.COMPLETED and usage is not None and usage.estimated:
        events.publish(client, job.id, Chunk(events.usage_chunk(outcome.result or {})), run=run)
