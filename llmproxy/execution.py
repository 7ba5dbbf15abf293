"""Execute one job end to end: claim it, run its chain, bill it once, hand the result to the waiter."""
from __future__ import annotations

import logging
import threading
import time
from decimal import Decimal
from typing import Callable

import redis
from sqlalchemy.orm import Session, sessionmaker

from llmproxy import channels, jobs, limits
from llmproxy.accounting import Prices, Usage, compute_cost, usage_from_openai
from llmproxy.catalog import fallback_chain
from llmproxy.config import Settings
from llmproxy.credentials import resolve_credential
from llmproxy.crypto import DecryptionError
from llmproxy.db import session_scope
from llmproxy.models import Job
from llmproxy.providers import Endpoint, Timeouts
from llmproxy.routing import ChainResult, RetryPolicy, Step, run_chain

log = logging.getLogger(__name__)


def retry_policy(settings: Settings) -> RetryPolicy:
    """The retry policy the settings describe."""
    return RetryPolicy(retries=settings.retry_attempts, base_seconds=settings.retry_base_seconds,
                       max_seconds=settings.retry_max_seconds,
                       timeouts=Timeouts(connect=settings.upstream_connect_timeout,
                                         read=settings.upstream_read_timeout))


def build_steps(session: Session, job: Job, settings: Settings) -> list[Step]:
    """The job's model and its fallbacks, each with the credential to use (or none: skipped)."""
    steps = []
    for model in fallback_chain(session, job.model):
        provider = model.provider
        if not provider.enabled:
            continue
        try:
            secret = resolve_credential(session, api_key_id=job.api_key_id, provider=provider,
                                        encryption_key=settings.encryption_key, env_keys=settings.provider_keys)
        except DecryptionError:
            log.error("stored key for provider %s cannot be decrypted; skipping it", provider.name)
            secret = None
        if secret is None and provider.kind == "openai_compatible":
            secret = ""  # self-hosted OpenAI-compatible servers often need no key
        endpoint = None if secret is None else Endpoint(provider.api_base, secret or None, model.upstream_model)
        steps.append(Step(model=model.name, provider=provider.name, kind=provider.kind, endpoint=endpoint,
                          prices=Prices(model.input_cost_per_1m, model.output_cost_per_1m,
                                        model.cached_input_cost_per_1m)))
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
        return jobs.Outcome(status=jobs.CANCELLED, attempts=chain.attempts, latency_ms=latency,
                            error={"message": "The request was cancelled", "type": "invalid_request_error",
                                   "param": None, "code": "cancelled"}, error_status=499)
    if chain.step is None or chain.response is None:
        return jobs.Outcome(status=jobs.FAILED, attempts=chain.attempts, error=chain.error,
                            error_status=chain.error_status, latency_ms=latency)
    step = chain.step
    usage = measure_usage(chain.response, job.request, step.model)
    response = dict(chain.response, model=step.model, usage=usage.as_openai())
    cost = compute_cost(usage, step.prices)
    return jobs.Outcome(status=jobs.COMPLETED, result=response, attempts=chain.attempts, usage=usage,
                        prices=step.prices, cost_usd=cost, served_model=step.model, served_provider=step.provider,
                        latency_ms=latency)


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


def execute_job(job_id: str, *, session_factory: sessionmaker, redis_client: redis.Redis,
                settings: Settings, sleep: Callable[[float], None] = time.sleep) -> str | None:
    """Run a job if it is ours to run; return its final status, or None when another run owns it."""
    with session_scope(session_factory) as session:
        job = jobs.claim_job(session, job_id, lease_seconds=settings.job_lease_seconds)
        if job is None:
            existing = jobs.get_job(session, job_id)
            if existing is not None and existing.status in jobs.FINAL:
                # A redelivered task for a finished job: make sure the waiter has its answer.
                channels.publish(redis_client, job_id, channels.DONE, done_event(existing),
                                 run=existing.run_count)
            return None
        run = job.run_count
        steps = build_steps(session, job, settings)
    started = time.monotonic()
    stop = _throttled(lambda: channels.cancel_requested(redis_client, job_id))
    with LeaseKeeper(session_factory, job_id, run, settings.job_lease_seconds):
        chain = run_chain(
            steps, job.request, stream=job.stream, policy=retry_policy(settings),
            emit=lambda chunk: channels.publish(redis_client, job_id, channels.CHUNK, chunk, run=run),
            should_stop=stop, sleep=sleep)
    outcome = outcome_of(job, chain, started)
    with session_scope(session_factory) as session:
        if not jobs.finish_job(session, job, run, outcome):
            log.info("job %s finished by another run; this run's result is dropped", job_id)
            return None
    # After the spend is committed: swap the reservation for the real usage (frees unused tokens now).
    used = outcome.usage.prompt_tokens + outcome.usage.completion_tokens if outcome.usage else 0
    limits.settle(redis_client, key_id=job.api_key_id, request_id=job_id, actual_tokens=used,
                  actual_cost_usd=outcome.cost_usd or Decimal(0))
    channels.publish(redis_client, job_id, channels.DONE, done_event(job), run=run)
    return job.status
