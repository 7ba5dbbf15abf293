"""A deployment's own rpm_limit and tpm_limit: a rolling 60 s window in Redis, kept by the scripts of a key's limits.

Every call to a deployment with limits is reserved under the deployment before it is sent, by an id of the
call (a redelivered job reserves the same id again, which counts nothing more), and settled with its real
tokens once served; a failed call is released (the provider counted the request, not its tokens). Batch
lines wait for a deployment with room (llmproxy.jobs.pacing); interactive calls are only steered by it:
when every deployment is full the call still goes, and is counted, so the next batch line sees it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from decimal import Decimal
from typing import Protocol

import redis

from llmproxy.limits.reservations import Admission, KeyLimits, release, reserve, settle

log = logging.getLogger(__name__)

UNLIMITED = KeyLimits()


class Limited(Protocol):
    """A deployment as routing sees it (llmproxy.jobs.deployment_choice.Target)."""

    @property
    def deployment(self) -> int | None: ...
    @property
    def rpm_limit(self) -> int | None: ...
    @property
    def tpm_limit(self) -> int | None: ...


def quota_id(deployment: int) -> str:
    """The id its window is kept under, beside the keys' (llmproxy:limits:{deployment:N}:…)."""
    return f"deployment:{deployment}"


def has_limits(target: Limited) -> bool:
    """The deployment has an rpm_limit or a tpm_limit of its own."""
    return target.deployment is not None and (target.rpm_limit is not None or target.tpm_limit is not None)


class Quotas:
    """Reserves, settles and releases calls in deployments' windows; `tokens` estimates a call (asked lazily)."""

    def __init__(
        self, client: redis.Redis, tokens: Callable[[], int], clock: Callable[[], float] | None = None
    ) -> None:
        self._client = client
        self._estimate = tokens
        self._tokens: int | None = None
        self._clock = clock

    def _now(self) -> float | None:
        return self._clock() if self._clock is not None else None  # None: the Redis server's clock

    def _tokens_for(self, target: Limited) -> int:
        if target.tpm_limit is None:
            return 0  # only a TPM limit needs the estimate (tiktoken: the costly part)
        if self._tokens is None:
            self._tokens = self._estimate()
        return self._tokens

    def take(self, target: Limited, call_id: str, *, force: bool = False) -> Admission | None:
        """Reserve the call if the deployment has room (or always, with `force`); None when Redis fails."""
        assert target.deployment is not None
        limits = UNLIMITED if force else KeyLimits(rpm=target.rpm_limit, tpm=target.tpm_limit)
        try:
            return reserve(
                self._client,
                key_id=quota_id(target.deployment),
                request_id=call_id,
                limits=limits,
                tokens=self._tokens_for(target),
                max_cost_usd=Decimal(0),
                spent_usd=Decimal(0),
                now=self._now(),
            )
        except redis.RedisError:
            log.warning("deployment %s's limits unavailable; calling it uncounted", target.deployment, exc_info=True)
            return None

    def settle(self, target: Limited, call_id: str, tokens: int) -> None:
        """Replace the call's estimated tokens by the ones the provider reported."""
        if target.deployment is None:
            return
        try:
            settle(
                self._client,
                key_id=quota_id(target.deployment),
                request_id=call_id,
                actual_tokens=max(0, tokens),
                actual_cost_usd=Decimal(0),
                now=self._now(),
            )
        except redis.RedisError:
            log.warning("could not settle a call to deployment %s", target.deployment, exc_info=True)

    def release(self, target: Limited, call_id: str) -> None:
        """A failed call: its tokens are free again, its request still counts."""
        if target.deployment is None:
            return
        try:
            release(self._client, key_id=quota_id(target.deployment), request_id=call_id, now=self._now())
        except redis.RedisError:
            log.warning("could not release a call to deployment %s", target.deployment, exc_info=True)
