"""Admission of a request against its key's RPM, TPM, budget and requests in flight, before anything is enqueued."""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal
from typing import Protocol

import redis

from llmproxy.billing.cost import ONE_MILLION
from llmproxy.errors import ApiError
from llmproxy.jsontypes import JSON
from llmproxy.keys.virtual_keys import KeyInfo
from llmproxy.limits import reservations
from llmproxy.operations import Operation, estimate_tokens
from llmproxy.storage.models import ApiKey


class Priced(Protocol):
    """A model that may serve a request, as far as its worst-case cost goes (a ChainEntry or a ModelConfig)."""

    @property
    def input_cost_per_1m(self) -> Decimal:
        """USD per 1M prompt tokens."""

    @property
    def output_cost_per_1m(self) -> Decimal:
        """USD per 1M completion tokens."""

    @property
    def cache_write_cost_per_1m(self) -> Decimal | None:
        """USD per 1M prompt tokens written to the provider's prompt cache (None: the input price)."""


def prompt_price(model: Priced) -> Decimal:
    """The most a prompt token of this model can cost: a token written to the cache may cost more than input."""
    write = model.cache_write_cost_per_1m
    return model.input_cost_per_1m if write is None else max(model.input_cost_per_1m, write)


def key_limits(key: ApiKey | KeyInfo, share: float = 1.0, parallel: int | None = None) -> reservations.KeyLimits | None:
    """The key's limits (rates scaled by `share`), or None when it has none (nothing to check).

    `parallel` caps the key's requests in flight (a web request's; batch work holds no web thread).

    Batch work is admitted against a share (BATCH_LIMIT_SHARE, 0.8 by default)
    of the same rolling windows that interactive requests use at 100%, so a
    draining batch always leaves the rest of the key's minute to its
    interactive callers.
    """
    if key.rpm_limit is None and key.tpm_limit is None and key.budget_usd is None and parallel is None:
        return None

    def scaled(limit: int | None) -> int | None:
        return None if limit is None else max(1, int(limit * share))

    return reservations.KeyLimits(
        rpm=scaled(key.rpm_limit), tpm=scaled(key.tpm_limit), budget_usd=key.budget_usd, parallel=parallel
    )


def insufficient_quota(headers: dict[str, str] | None = None) -> ApiError:
    """429 insufficient_quota: the key's budget is spent (waiting will not help: no Retry-After)."""
    return ApiError(
        429,
        "You exceeded your budget: this key's spending limit is reached.",
        type="rate_limit_error",
        code="insufficient_quota",
        headers=headers,
    )


def worst_case_cost(
    chain: Sequence[Priced], body: JSON, *, default_max_tokens: int, operation: str = Operation.CHAT
) -> tuple[int, Decimal]:
    """(estimated tokens, highest possible cost): prompt and max completion at the chain's highest prices.

    `chain` holds the models that may serve (anything with input/output_cost_per_1m). The prompt counts what
    a provider bills (messages, tool definitions, a response schema); the completion is the output cap sent
    upstream (the caller's, else `default_max_tokens`) times `n`, so no answer can cost more.
    """
    prompt, completion = estimate_tokens(operation, body, default_max_tokens=default_max_tokens)
    max_in = max((prompt_price(m) for m in chain), default=Decimal(0))
    max_out = max((m.output_cost_per_1m for m in chain), default=Decimal(0))
    return prompt + completion, (prompt * max_in + completion * max_out) / ONE_MILLION


def ratelimit_headers(state: reservations.RateState | None) -> dict[str, str]:
    """OpenAI's x-ratelimit-* headers for the limits the key has."""
    if state is None:
        return {}
    headers: dict[str, str] = {}
    if state.limit_requests is not None:
        headers.update(
            {
                "x-ratelimit-limit-requests": str(state.limit_requests),
                "x-ratelimit-remaining-requests": str(state.remaining_requests),
                "x-ratelimit-reset-requests": f"{state.reset_requests:.3f}s",
            }
        )
    if state.limit_tokens is not None:
        headers.update(
            {
                "x-ratelimit-limit-tokens": str(state.limit_tokens),
                "x-ratelimit-remaining-tokens": str(state.remaining_tokens),
                "x-ratelimit-reset-tokens": f"{state.reset_tokens:.3f}s",
            }
        )
    return headers


def admit(
    client: redis.Redis,
    *,
    key: ApiKey | KeyInfo,
    request_id: str,
    body: JSON,
    chain: Sequence[Priced],
    default_max_tokens: int,
    share: float = 1.0,
    parallel: int | None = None,
    slot_seconds: float = reservations.DEFAULT_RESERVATION_TTL,
    reservation_ttl: float = reservations.DEFAULT_RESERVATION_TTL,
    operation: str = Operation.CHAT,
) -> reservations.Admission | None:
    """Reserve this request's share of the key's limits, or raise 429 saying which limit and for how long.

    `chain` is the model's fallback chain (from the process's snapshots: web and worker pass the
    same cached one), whose highest prices bound the request's worst-case cost. With `parallel`,
    the request also holds one of the key's slots in flight (llmproxy.limits.parallel) until it ends.
    The cost reservation lives `reservation_ttl` seconds, renewed with its job's lease while it runs.
    """
    key_lims = key_limits(key, share, parallel)
    if key_lims is None:
        return None
    if key_lims.tpm is None and key_lims.budget_usd is None:
        tokens, max_cost = 0, Decimal(0)  # only TPM and the budget need the estimate (tiktoken: the costly part)
    else:
        tokens, max_cost = worst_case_cost(chain, body, default_max_tokens=default_max_tokens, operation=operation)
    state = reservations.reserve(
        client,
        key_id=key.id,
        request_id=request_id,
        limits=key_lims,
        tokens=tokens,
        max_cost_usd=max_cost,
        spent_usd=key.spend_usd or Decimal(0),
        slot_seconds=slot_seconds,
        reservation_ttl=reservation_ttl,
    )
    if state.allowed:
        return state
    headers = ratelimit_headers(state)
    if state.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(state.retry_after)))
    if state.reason == "budget":
        raise insufficient_quota(headers)
    if state.reason == "parallel_requests":
        raise too_many_in_flight(parallel or 0, headers)
    if state.never:
        what = (
            f"needs about {tokens} tokens, more than this key's limit of {key_lims.tpm} tokens per minute; "
            "lower max_tokens or the prompt"
            if state.reason == "tokens"
            else "is not allowed any requests"
        )
        raise ApiError(
            429,
            f"Request too large: it {what}.",
            type="rate_limit_error",
            code="rate_limit_exceeded",
            param=state.reason,
            headers=headers,
        )
    limit, used = (key_lims.rpm, "requests") if state.reason == "requests" else (key_lims.tpm, "tokens")
    raise ApiError(
        429,
        f"Rate limit reached for {used} per minute: limit {limit}. Try again in {headers.get('Retry-After', '1')}s.",
        type="rate_limit_error",
        code="rate_limit_exceeded",
        param=state.reason,
        headers=headers,
    )


def too_many_in_flight(limit: int, headers: dict[str, str] | None = None) -> ApiError:
    """429 for a key whose requests in flight (waits, streams, long-polls) are at its max_parallel_requests."""
    return ApiError(
        429,
        f"Too many requests in flight for this key: limit {limit}. Try again when one of them has ended.",
        type="rate_limit_error",
        code="rate_limit_exceeded",
        param="parallel_requests",
        headers={"Retry-After": "1", **(headers or {})},
    )
