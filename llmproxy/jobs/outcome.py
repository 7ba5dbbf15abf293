"""How a run ended: the outcome stored on the job, with usage and cost (partial streams billed too), and its metrics."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import redis

from llmproxy.billing.cost import Prices, Usage, compute_cost
from llmproxy.billing.measure import measure_usage
from llmproxy.errors import error_object
from llmproxy.jobs.routing import ChainResult
from llmproxy.jobs.states import JobStatus
from llmproxy.jsontypes import JSON
from llmproxy.operations import Operation
from llmproxy.responses.running import chat_request, is_response, stored_response
from llmproxy.storage.models import Job
from llmproxy.telemetry.metrics import Counters, record_job


@dataclass
class Outcome:
    """How a run ended, ready to be stored on the job (and billed if it has usage)."""

    status: str
    result: JSON | None = None
    error: JSON | None = None
    error_status: int | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)
    usage: Usage | None = None
    prices: Prices | None = None
    cost_usd: Decimal | None = None
    served_model: str | None = None
    served_provider: str | None = None
    served_deployment: int | None = None  # the deployment's id, for usage by deployment
    latency_ms: int | None = None


log = logging.getLogger(__name__)


def outcome_of(job: Job, chain: ChainResult, started: float) -> Outcome:
    """Turn a chain result into the job's stored outcome, with usage and cost when it was served."""
    latency = int((time.monotonic() - started) * 1000)
    if chain.cancelled:
        outcome = Outcome(
            status=JobStatus.CANCELLED,
            attempts=chain.attempts,
            latency_ms=latency,
            error=error_object("The request was cancelled", code="cancelled"),
            error_status=499,
        )
        return _bill_partial(outcome, chain, job)
    if chain.step is None or chain.response is None:
        outcome = Outcome(
            status=JobStatus.FAILED,
            attempts=chain.attempts,
            error=chain.error,
            error_status=chain.error_status,
            latency_ms=latency,
        )
        return _bill_partial(outcome, chain, job)
    step = chain.step
    if is_response(job):
        usage = measure_usage(chain.response, chat_request(job), step.model)
        response = stored_response(job, chain.response, usage, step.model)
    else:
        usage = measure_usage(chain.response, job.request, step.model, job.operation)
        shown = usage.as_openai_embeddings() if job.operation == Operation.EMBEDDINGS else usage.as_openai()
        response = dict(chain.response, model=step.model, usage=shown)
    cost = compute_cost(usage, step.prices)
    return Outcome(
        status=JobStatus.COMPLETED,
        result=response,
        attempts=chain.attempts,
        usage=usage,
        prices=step.prices,
        cost_usd=cost,
        served_model=step.model,
        served_provider=step.provider,
        served_deployment=step.deployment,
        latency_ms=latency,
    )


def _bill_partial(outcome: Outcome, chain: ChainResult, job: Job) -> Outcome:
    """A stream cut after chunks were sent still cost the provider's tokens: bill what was produced."""
    if chain.partial is None or chain.partial_step is None:
        return outcome
    step = chain.partial_step
    usage = measure_usage(chain.partial, chat_request(job), step.model)
    outcome.usage, outcome.prices = usage, step.prices
    outcome.cost_usd = compute_cost(usage, step.prices)
    outcome.served_model, outcome.served_provider = step.model, step.provider
    outcome.served_deployment = step.deployment
    return outcome


def record_outcome_metrics(client: redis.Redis, counters: Counters | None, outcome: Outcome) -> None:
    """Count the job's attempts, tokens, cost and latency; without the process's counters, send them at once."""
    target = counters or Counters(client, interval=None)
    try:
        record_job(
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
