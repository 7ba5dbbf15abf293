"""Run one request over its chain: another deployment at once, retries with backoff and jitter, then the next model.

Decisions are made on the provider error taxonomy only (`retryable`,
`fallback_now`, `retry_after`), never on a provider's raw exception."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from llmproxy.billing.cost import Prices
from llmproxy.chat.output_cap import capped_body
from llmproxy.chat.stream_assembly import StreamAssembler
from llmproxy.errors import error_object
from llmproxy.jobs.deployment_choice import DeploymentRouter, Target
from llmproxy.jobs.upstream_errors import STREAM_INTERRUPTED, attempt_message, caller_error, log_failure
from llmproxy.jsontypes import JSON
from llmproxy.operations import Operation
from llmproxy.providers import (
    Endpoint,
    Provider,
    ProviderBadRequest,
    ProviderContextTooLong,
    ProviderError,
    Timeouts,
    get_provider,
)


@dataclass(frozen=True)
class Step:
    """One model of the chain, with where and how to call it (endpoint None: no credential, skipped).

    `provider`, `kind`, `endpoint` and `deployment` are the target being called: the model's first
    usable deployment as built, the one that served it in a ChainResult. `targets` are all of the
    model's deployments (empty: the step's own fields are its one target).
    """

    model: str
    provider: str
    kind: str
    endpoint: Endpoint | None
    prices: Prices
    deployment: int | None = None
    targets: tuple[Target, ...] = ()

    def all_targets(self) -> tuple[Target, ...]:
        """The deployments this step may call."""
        return self.targets or (Target(self.deployment, self.provider, self.kind, self.endpoint),)

    def served_by(self, target: Target) -> Step:
        """This step as called through `target` (itself when that is its own target)."""
        if (target.deployment, target.provider, target.kind, target.endpoint) == (
            self.deployment,
            self.provider,
            self.kind,
            self.endpoint,
        ):
            return self
        return replace(
            self, provider=target.provider, kind=target.kind, endpoint=target.endpoint, deployment=target.deployment
        )


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try each model before the next one."""

    retries: int = 2
    base_seconds: float = 0.5
    max_seconds: float = 20.0
    timeouts: Timeouts = field(default_factory=Timeouts)


@dataclass
class ChainResult:
    """What happened: the served step and response, or the error to give the caller."""

    attempts: list[dict[str, Any]]
    step: Step | None = None
    response: JSON | None = None
    chunks_sent: int = 0
    # What a stream had produced when it was cancelled or broke: billed, since the provider bills it.
    partial: JSON | None = None
    partial_step: Step | None = None
    error_status: int | None = None
    error: JSON | None = None
    cancelled: bool = False


def _attempt(step: Step, outcome: str, status: int | None, started: float) -> JSON:
    record: JSON = {
        "provider": step.provider,
        "model": step.model,
        "deployment": step.deployment,
        "outcome": outcome,
        "status_code": status,
        "latency_ms": int((time.monotonic() - started) * 1000),
    }
    if outcome not in ("ok", "cancelled"):
        # A fixed text per outcome, never the upstream's own (see llmproxy.jobs.upstream_errors).
        record["message"] = attempt_message(outcome)
    return record


def _delay(policy: RetryPolicy, retry: int, retry_after: float | None) -> float | None:
    """Seconds to wait before retry number `retry`, or None when the provider asks for longer than the cap."""
    if retry_after is not None:
        return retry_after if retry_after <= policy.max_seconds else None
    backoff = min(policy.max_seconds, policy.base_seconds * 2.0**retry)
    return backoff * random.uniform(0.5, 1.0)


def run_chain(
    steps: list[Step],
    request: JSON,
    *,
    stream: bool,
    policy: RetryPolicy,
    emit: Callable[[JSON, Step], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    sleep: Callable[[float], None] = time.sleep,
    job_id: str = "-",
    output_cap: int | None = None,
    router: DeploymentRouter | None = None,
    operation: str = Operation.CHAT,
    native: JSON | None = None,
) -> ChainResult:
    """Try each step in order; return the first success, a caller error, or every attempt's failure.

    Within a step, `router` picks the deployment; a failed one is left for another of the model at once
    (no backoff), and only once each was tried do the retries with backoff start. Without a router the
    first usable deployment is called. Each failure's upstream text is logged under `job_id`; the result
    carries only our codes and messages. A chat body without its own output cap is sent with `output_cap`
    (what its reservation covers per choice); `operation` says which API to call (embeddings never stream).
    `native` is a Responses request as it is, sent instead of `request` to a provider that has that API.
    """
    router = router or DeploymentRouter()
    result = ChainResult(attempts=[])
    for listed in steps:
        targets = listed.all_targets()
        target = router.choose(listed.model, targets)
        if target is None:
            result.attempts.append(_attempt(listed, "no_credentials", None, time.monotonic()))
            continue
        tried: set[int | None] = set()
        retry = 0
        while True:
            step = listed.served_by(target)
            assert step.endpoint is not None  # the router chooses deployments with a credential only
            provider = get_provider(step.kind)
            embeddings = operation == Operation.EMBEDDINGS
            body = request if embeddings else capped_body(request, provider.output_cap_field, output_cap)
            as_is = native if native is not None and provider.responds else None
            if should_stop():
                result.cancelled = True
                return result
            started = time.monotonic()
            try:
                with router.calling(target):
                    if embeddings:
                        result.response = provider.embed(step.endpoint, body, timeouts=policy.timeouts)
                    elif stream:
                        _run_stream(provider, step, body, policy, emit, should_stop, result, as_is)
                    elif as_is is not None:
                        result.response = provider.respond(step.endpoint, as_is, timeouts=policy.timeouts)
                    else:
                        result.response = provider.complete(step.endpoint, body, timeouts=policy.timeouts)
                if result.cancelled:
                    result.attempts.append(_attempt(step, "cancelled", None, started))
                    return result
                result.attempts.append(_attempt(step, "ok", 200, started))
                result.step = step
                router.used(target, _total_tokens(result.response))
                return result
            except ProviderError as exc:
                result.attempts.append(_attempt(step, exc.outcome, exc.status_code, started))
                log_failure(job_id, step.provider, step.model, exc)
                if result.chunks_sent:
                    # Bytes already reached the caller: no fallback, end the stream with an error.
                    result.error_status = 502
                    result.error = error_object(STREAM_INTERRUPTED, type="upstream_error", code="stream_interrupted")
                    return result
                if isinstance(exc, ProviderBadRequest):
                    result.error_status = exc.status_code or 400
                    result.error = caller_error(exc)
                    return result
                if exc.retryable:
                    router.cool_down(target, exc.retry_after)
                tried.add(target.deployment)
                # Another deployment of the model at once; a prompt too long for the model is so on every one.
                other = None if isinstance(exc, ProviderContextTooLong) else router.choose(listed.model, targets, tried)
                if other is not None:
                    target = other
                    continue
                if exc.retryable and not exc.fallback_now and retry < policy.retries:
                    delay = _delay(policy, retry, exc.retry_after)
                    if delay is not None:
                        retry += 1
                        sleep(delay)
                        target = router.choose(listed.model, targets) or target
                        continue
                break
    result.error_status = 502
    reasons = "; ".join(
        f"{a['provider']}/{a['model']}: {a['outcome']}" + (f" ({a['status_code']})" if a.get("status_code") else "")
        for a in result.attempts
    )
    result.error = error_object(
        f"All providers failed: {reasons or 'no model to try'}", type="upstream_error", code="all_providers_failed"
    )
    return result


def _total_tokens(response: JSON | None) -> int:
    """The tokens the provider reported for a served call (0 when it reported none)."""
    usage = (response or {}).get("usage")
    if not isinstance(usage, dict):
        return 0
    total = usage.get("total_tokens")
    if isinstance(total, int):
        return total
    return sum(v for v in (usage.get("prompt_tokens"), usage.get("completion_tokens")) if isinstance(v, int))


def _run_stream(
    provider: Provider,
    step: Step,
    body: JSON,
    policy: RetryPolicy,
    emit: Callable[[JSON, Step], None] | None,
    should_stop: Callable[[], bool],
    result: ChainResult,
    native: JSON | None = None,
) -> None:
    assert step.endpoint is not None  # steps without a credential are skipped before they are run
    assembler = StreamAssembler()
    chunks: Iterator[JSON] = (
        provider.respond_stream(step.endpoint, native, timeouts=policy.timeouts)
        if native is not None
        else provider.stream(step.endpoint, body, timeouts=policy.timeouts)
    )
    try:
        for chunk in chunks:
            chunk["model"] = step.model
            assembler.add(chunk)
            if emit is not None:
                emit(chunk, step)
            result.chunks_sent += 1
            if should_stop():
                result.cancelled = True
                break
    except ProviderError:
        if result.chunks_sent:
            result.partial, result.partial_step = assembler.completion(), step
        raise
    finally:
        close = getattr(chunks, "close", None)
        if close:
            close()
    if result.cancelled:
        if result.chunks_sent:
            result.partial, result.partial_step = assembler.completion(), step
        return
    result.response = assembler.completion()
