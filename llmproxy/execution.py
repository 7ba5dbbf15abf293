"""Execute one job end to end: claim it, run its chain, bill it once, hand the result to the waiter."""
from __future__ import annotations

import logging
import threading
import time
from decimal import Decimal
from typing import Callable

import redis
from sqlalchemy.orm import Session, sessionmaker

from llmproxy import channels, jobs, limits, metrics
from llmproxy.accounting import Prices, Usage, compute_cost, usage_from_openai
from llmproxy.catalog import load_chain
from llmproxy.config import Settings
from llmproxy.credentials import load_key_credentials
from llmproxy.db import session_scope
from llmproxy.admission import admit
from llmproxy.errors import ApiError
from llmproxy.models import ApiKey, Job
from llmproxy.queueing import BATCH, INTERACTIVE
from llmproxy.providers import Endpoint, Timeouts
from llmproxy.routing import ChainResult, RetryPolicy, Step, run_chain
from llmproxy.snapshots import Snapshots

log = logging.getLogger(__name__)


def retry_policy(settings: Settings) -> RetryPolicy:
    """The retry policy the settings describe."""
    return RetryPolicy(retries=settings.retry_attempts, base_seconds=settings.retry_base_seconds,
                       max_seconds=settings.retry_max_seconds,
                       timeouts=Timeouts(connect=settings.upstream_connect_timeout,
                                         read=settings.upstream_read_timeout))


def build_steps(session: Session, job: Job, settings: Settings,
                snapshots: Snapshots | None = None) -> list[Step]:
    """The job's model and its fallbacks, each with the credential to use (or none: skipped).

    Credentials: the caller's saved key, else the provider's configured key, else the environment's.
    """
    snapshots = snapshots or Snapshots(0)
    chain = snapshots.get(("chain", job.model),
                          lambda: load_chain(session, job.model, encryption_key=settings.encryption_key))
    saved = snapshots.get(("credentials", job.api_key_id), lambda: load_key_credentials(
        session, api_key_id=job.api_key_id, encryption_key=settings.encryption_key))
    steps = []
    for entry in chain:
        if not entry.provider_enabled:
            continue
        if entry.provider in saved:
            secret = saved[entry.provider]
            if secret is None:
                log.error("saved key of %s for provider %s cannot be decrypted; skipping it",
                          job.api_key_id, entry.provider)
        else:
            secret = entry.provider_key or settings.provider_keys.get(entry.provider)
        if secret is None and entry.kind == "openai_compatible":
            secret = ""  # self-hosted OpenAI-compatible servers often need no key
        endpoint = None if secret is None else Endpoint(entry.api_base, secret or None, entry.upstream_model)
        steps.append(Step(model=entry.model, provider=entry.provider, kind=entry.kind, endpoint=endpoint,
                          prices=Prices(entry.input_cost_per_1m, entry.output_cost_per_1m,
                                        entry.cached_input_cost_per_1m)))
    return steps


def measure_usage(response: dict, request: dict, model: str) -> Usage:
    """The provider's reported usage, else our own count (marked estimated)."""
    reported = usage_from_openai(response.get("usage"))
    if reported is not None:
        return reported
    from llmproxy.tokens import count_prompt_tokens, count_text_tokens

    completion_text = "".join((c.get("message") or {}).get("content") or "" for c in response.get("choices") or [])
    return Usage(prompt_tokens=count_prompt_tokens(request.get("messages") or [], model),
                 completion_tokens=count_text_tokens(completion_text, model), estimated=True)


def outcome_of(job: Job, chain: ChainResult, started: float) -> jobs.Outcome:
    """Turn a chain result into the job's stored outcome, with usage and cost when it was served."""
    latency = int((time.monotonic() - started) * 1000)
    if chain.cancelled:
        outcome = jobs.Outcome(status=jobs.CANCELLED, attempts=chain.attempts, latency_ms=latency,
                               error={"message": "The request was cancelled", "type": "invalid_request_error",
                                      "param": None, "code": "cancelled"}, error_status=499)
        return _bill_partial(outcome, chain, job)
    if chain.step is None or chain.response is None:
        outcome = jobs.Outcome(status=jobs.FAILED, attempts=chain.attempts, error=chain.error,
                               error_status=chain.error_status, latency_ms=latency)
        return _bill_partial(outcome, chain, job)
    step = chain.step
    usage = measure_usage(chain.response, job.request, step.model)
    response = dict(chain.response, model=step.model, usage=usage.as_openai())
    cost = compute_cost(usage, step.prices)
    return jobs.Outcome(status=jobs.COMPLETED, result=response, attempts=chain.attempts, usage=usage,
                        prices=step.prices, cost_usd=cost, served_model=step.model, served_provider=step.provider,
                        latency_ms=latency)


def _bill_partial(outcome: jobs.Outcome, chain: ChainResult, job: Job) -> jobs.Outcome:
    """A stream cut after chunks were sent still cost the provider's tokens: bill what was produced."""
    if chain.partial is None or chain.partial_step is None:
        return outcome
    step = chain.partial_step
    usage = measure_usage(chain.partial, job.request, step.model)
    outcome.usage, outcome.prices = usage, step.prices
    outcome.cost_usd = compute_cost(usage, step.prices)
    outcome.served_model, outcome.served_provider = step.model, step.provider
    return outcome


def usage_chunk(result: dict) -> dict:
    """OpenAI's last stream chunk (no choices, the usage) for a completed stream's result."""
    return {"id": result.get("id"), "object": "chat.completion.chunk", "created": result.get("created"),
            "model": result.get("model"), "choices": [], "usage": result.get("usage")}


def done_event(job: Job) -> dict:
    """What the waiting web process needs to answer without reading the database again."""
    return {"status": job.status, "result": job.result, "error": job.error, "error_status": job.error_status,
            "cost_usd": None if job.cost_usd is None else str(job.cost_usd), "served_model": job.served_model,
            "served_provider": job.served_provider, "attempts": len(job.attempts or [])}


class LeaseKeeper:
    """Renews the job's lease in the background while a run is alive, so the sweeper leaves it alone."""

    def __init__(self, session_factory: sessionmaker, job_id: str, run: int, lease_seconds: float) -> None:
        self._stop = threading.Event()
        self._args = (session_factory, job_id, run, lease_seconds)
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *_exc):
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        session_factory, job_id, run, lease = self._args
        while not self._stop.wait(lease / 3):
            try:
                with session_scope(session_factory) as session:
                    if not jobs.renew_lease(session, job_id, run, lease_seconds=lease):
                        return
            except Exception:  # noqa: BLE001 - a missed renewal is retried on the next tick
                log.warning("could not renew lease of %s", job_id, exc_info=True)


def pace(session: Session, client: redis.Redis, job: Job, settings: Settings) -> ApiError | None:
    """Reserve the job's share of its key's limits; raise Deferred to wait, or return a refusal waiting can't fix."""
    key = session.get(ApiKey, job.api_key_id)
    if key is None or key.revoked_at is not None:
        return ApiError(401, "The key of this job was revoked", type="authentication_error", code="invalid_api_key")
    try:
        admit(session, client, key=key, request_id=job.id, body=job.request,
              default_max_tokens=settings.default_max_tokens, share=settings.batch_limit_share)
    except ApiError as refusal:
        if refusal.headers.get("Retry-After") and refusal.code == "rate_limit_exceeded":
            raise Deferred(min(30.0, float(refusal.headers["Retry-After"]))) from None
        return refusal
    return None


def _refuse(session_factory, client, job: Job, refusal: ApiError, settings: Settings) -> str | None:
    """End a queued job that can never be admitted (budget spent, too large, key revoked)."""
    with session_scope(session_factory) as session:
        claimed = jobs.claim_job(session, job.id, lease_seconds=settings.job_lease_seconds)
        if claimed is None:
            return None
        outcome = jobs.Outcome(status=jobs.FAILED, error=refusal.body()["error"], error_status=refusal.status)
        if not jobs.finish_job(session, claimed, claimed.run_count, outcome):
            return None
    channels.publish(client, job.id, channels.DONE, done_event(claimed), run=claimed.run_count)
    return claimed.status


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


class Deferred(Exception):
    """The job must wait for its key's capacity: run it again after `delay` seconds."""

    def __init__(self, delay: float) -> None:
        super().__init__(f"deferred for {delay:.2f}s")
        self.delay = delay


def execute_job(job_id: str, *, session_factory: sessionmaker, redis_client: redis.Redis,
                settings: Settings, queue: str | None = None, snapshots: Snapshots | None = None,
                sleep: Callable[[float], None] = time.sleep, counters: metrics.Counters | None = None) -> str | None:
    """Run a job if it is ours to run; return its final status, or None when another run owns it.

    Queued jobs of the batch queue are paced first: they raise Deferred until
    their key has capacity, instead of failing with 429.
    """
    snapshots = snapshots or Snapshots(0)
    snapshots.sync(redis_client)
    with session_scope(session_factory) as session:
        # Interactive jobs were admitted by the web; others are paced here, before they are claimed.
        pending = jobs.get_job(session, job_id) if queue != INTERACTIVE else None
        if pending is not None and pending.queue == BATCH and pending.status == jobs.QUEUED:
            refusal = pace(session, redis_client, pending, settings)
            if refusal is not None:
                return _refuse(session_factory, redis_client, pending, refusal, settings)
        job = jobs.claim_job(session, job_id, lease_seconds=settings.job_lease_seconds)
        if job is None:
            existing = jobs.get_job(session, job_id)
            if existing is not None and existing.status in jobs.FINAL:
                # A redelivered task for a finished job: make sure the waiter has its answer.
                channels.publish(redis_client, job_id, channels.DONE, done_event(existing),
                                 run=existing.run_count)
            return None
        run = job.run_count
        steps = build_steps(session, job, settings, snapshots)
    started = time.monotonic()
    stop = _throttled(lambda: channels.cancel_requested(redis_client, job_id))
    announced = []

    def emit(chunk: dict, step: Step) -> None:
        # The first chunk says who serves the stream, so the web can set its headers.
        meta = None if announced else {"provider": step.provider, "model": step.model}
        announced.append(True)
        channels.publish(redis_client, job_id, channels.CHUNK, chunk, run=run, meta=meta)

    with LeaseKeeper(session_factory, job_id, run, settings.job_lease_seconds):
        chain = run_chain(steps, job.request, stream=job.stream, policy=retry_policy(settings), emit=emit,
                          should_stop=stop, sleep=sleep)
    outcome = outcome_of(job, chain, started)
    with session_scope(session_factory) as session:
        if not jobs.finish_job(session, job, run, outcome):
            log.info("job %s finished by another run; this run's result is dropped", job_id)
            return None
    try:
        # After the spend is committed: swap the reservation for the real usage (frees unused tokens now).
        used = outcome.usage.prompt_tokens + outcome.usage.completion_tokens if outcome.usage else 0
        limits.settle(redis_client, key_id=job.api_key_id, request_id=job_id, actual_tokens=used,
                      actual_cost_usd=outcome.cost_usd or Decimal(0))
        if job.stream and outcome.status == jobs.COMPLETED and outcome.usage is not None and outcome.usage.estimated:
            # The upstream streamed no usage: a caller who asked for it (stream_options.include_usage)
            # gets our count, as OpenAI would send it; the web drops this chunk for everyone else.
            channels.publish(redis_client, job_id, channels.CHUNK, usage_chunk(outcome.result), run=run)
    finally:
        # The job is stored and billed: whatever failed above, the waiter must get its answer.
        channels.publish(redis_client, job_id, channels.DONE, done_event(job), run=run)
    _record_metrics(redis_client, counters, outcome)  # after the answer: nobody waits for the counters
    return job.status


def _record_metrics(client: redis.Redis, counters: metrics.Counters | None, outcome: jobs.Outcome) -> None:
    # Without the process's counters (a direct call), send this job's at once.
    target = counters or metrics.Counters(client, interval=None)
    try:
        metrics.record_job(target, attempts=outcome.attempts, model=outcome.served_model,
                           prompt_tokens=outcome.usage.prompt_tokens if outcome.usage else 0,
                           completion_tokens=outcome.usage.completion_tokens if outcome.usage else 0,
                           cost_usd=outcome.cost_usd, latency_ms=outcome.latency_ms)
        if counters is None:
            target.flush()
    except redis.RedisError:  # the job is done and billed; a lost metric must not redo it
        log.warning("could not record job metrics", exc_info=True)
