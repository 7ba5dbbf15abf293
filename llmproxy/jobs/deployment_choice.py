"""Which deployment of a model to call: healthy ones by weight (or fewest calls in flight), cooling ones last.

Health is shared by every worker through Redis. A deployment that failed with a retryable error of the
taxonomy (429, 5xx, timeout: `ProviderError.retryable`) cools down for the provider's `retry_after`, else
DEPLOYMENT_COOLDOWN_SECONDS; while it cools it is chosen only if no other deployment of its model is
healthy. A deployment at its own `rpm_limit` or `tpm_limit` this minute is passed over the same way (the
limits shape routing; they refuse nothing). A model with one usable deployment costs no Redis call; with
several, one pipelined round trip, plus one per call to a deployment that has limits.

`weighted` gives each deployment its weight's share of its model's calls in turn, counted in Redis across
every worker (3:1 is exactly three calls in four, never a random drift); `least_busy` picks the deployment
with the fewest calls in flight, counted in Redis while they run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum

import redis

from llmproxy.providers import Endpoint

log = logging.getLogger(__name__)

MAX_COOLDOWN_SECONDS = 3600.0  # a provider asking for longer is asked again after an hour
BUSY_TTL_SECONDS = 600  # an in-flight count a killed worker never lowered fades away


@dataclass(frozen=True)
class Target:
    """One deployment of a step's model: where and how to call it (endpoint None: no credential, skipped)."""

    deployment: int | None
    provider: str
    kind: str
    endpoint: Endpoint | None
    weight: int = 1
    rpm_limit: int | None = None
    tpm_limit: int | None = None


class Strategy(StrEnum):
    """How a model's healthy deployments share its calls (ROUTING_STRATEGY)."""

    WEIGHTED = "weighted"
    LEAST_BUSY = "least_busy"


def cool_key(deployment: int) -> str:
    """Set (with an expiry) while the deployment cools down."""
    return f"llmproxy:deployment:{deployment}:cool"


def busy_key(deployment: int) -> str:
    """How many calls to the deployment are in flight (least_busy only)."""
    return f"llmproxy:deployment:{deployment}:busy"


def usage_key(deployment: int, unit: str, minute: int) -> str:
    """The deployment's requests ('rpm') or tokens ('tpm') counted in one clock minute."""
    return f"llmproxy:deployment:{deployment}:{unit}:{minute}"


def turn_key(model: str) -> str:
    """How many weighted choices among the model's deployments were made: whose turn it is."""
    return f"llmproxy:model:{model}:turn"


def cooldowns(client: redis.Redis, deployments: Sequence[int]) -> dict[int, float]:
    """Seconds each deployment still cools down (0: healthy), in one round trip."""
    pipe = client.pipeline(transaction=False)
    for deployment in deployments:
        pipe.pttl(cool_key(deployment))
    return {d: max(0, int(ms)) / 1000 for d, ms in zip(deployments, pipe.execute(), strict=True)}


class DeploymentRouter:
    """Chooses, cools down and counts deployments; without a Redis client, always the first usable one."""

    def __init__(
        self,
        client: redis.Redis | None = None,
        *,
        strategy: str = Strategy.WEIGHTED,
        cooldown_seconds: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._strategy = Strategy(strategy)
        self._cooldown = cooldown_seconds
        self._clock = clock

    def _minute(self) -> int:
        return int(self._clock() // 60)

    def choose(self, model: str, targets: Sequence[Target], exclude: Collection[int | None] = ()) -> Target | None:
        """The target to call: one with a credential not in `exclude`, healthy if any is; None when there is none."""
        usable = [t for t in targets if t.endpoint is not None and t.deployment not in exclude]
        client = self._client
        if len(usable) <= 1 or client is None or any(t.deployment is None for t in usable):
            return usable[0] if usable else None
        ids = [t.deployment for t in usable if t.deployment is not None]
        minute = self._minute()
        try:
            pipe = client.pipeline(transaction=False)
            pipe.mget([cool_key(d) for d in ids])
            if self._strategy == Strategy.LEAST_BUSY:
                pipe.mget([busy_key(d) for d in ids])
            else:
                pipe.incr(turn_key(model))
            pipe.mget([usage_key(d, unit, minute) for d in ids for unit in ("rpm", "tpm")])
            cooling, counts, used = pipe.execute()
        except redis.RedisError:
            log.warning("deployment health unavailable; calling the first deployment of %s", model, exc_info=True)
            return usable[0]
        healthy = [
            t
            for i, t in enumerate(usable)
            if cooling[i] is None and not _at_limit(t, int(used[2 * i] or 0), int(used[2 * i + 1] or 0))
        ] or usable
        if self._strategy == Strategy.LEAST_BUSY:
            busy = {d: int(count or 0) for d, count in zip(ids, counts, strict=True)}
            # Ties go to the heavier deployment, then the first.
            return min(healthy, key=lambda t: (busy[t.deployment or 0], -t.weight))
        return _by_turn(healthy, int(counts))

    def cool_down(self, target: Target, retry_after: float | None) -> None:
        """Keep the deployment out of choices for `retry_after` seconds (the provider's), else the default."""
        if self._client is None or target.deployment is None:
            return
        seconds = retry_after if retry_after is not None and retry_after > 0 else self._cooldown
        milliseconds = int(min(seconds, MAX_COOLDOWN_SECONDS) * 1000)
        if milliseconds <= 0:
            return
        try:
            self._client.set(cool_key(target.deployment), 1, px=milliseconds)
        except redis.RedisError:
            log.warning("could not cool down deployment %s", target.deployment, exc_info=True)

    @contextmanager
    def calling(self, target: Target) -> Iterator[None]:
        """Count the call in its deployment's minute (with an rpm_limit) and in flight while it runs (least_busy)."""
        if self._client is None or target.deployment is None:
            yield
            return
        counts: list[tuple[str, int, int]] = []  # key, increment, expiry
        if target.rpm_limit is not None:
            counts.append((usage_key(target.deployment, "rpm", self._minute()), 1, 120))
        in_flight = self._strategy == Strategy.LEAST_BUSY
        if in_flight:
            counts.append((busy_key(target.deployment), 1, BUSY_TTL_SECONDS))
        counted = self._count(counts)
        try:
            yield
        finally:
            if counted and in_flight:
                self._count([(busy_key(target.deployment), -1, BUSY_TTL_SECONDS)])

    def used(self, target: Target, tokens: int) -> None:
        """Add a served call's tokens to its deployment's minute (with a tpm_limit only)."""
        if target.tpm_limit is not None and target.deployment is not None and tokens > 0:
            self._count([(usage_key(target.deployment, "tpm", self._minute()), tokens, 120)])

    def _count(self, counts: list[tuple[str, int, int]]) -> bool:
        if not counts or self._client is None:
            return False
        try:
            pipe = self._client.pipeline(transaction=False)
            for key, delta, ttl in counts:
                pipe.incrby(key, delta)
                pipe.expire(key, ttl)
            pipe.execute()
        except redis.RedisError:
            log.warning("could not count a deployment's call", exc_info=True)
            return False
        return True


def _at_limit(target: Target, requests: int, tokens: int) -> bool:
    """The deployment used its own requests or tokens of this minute."""
    return (target.rpm_limit is not None and requests >= target.rpm_limit) or (
        target.tpm_limit is not None and tokens >= target.tpm_limit
    )


def _by_turn(targets: Sequence[Target], turn: int) -> Target:
    """The target whose share of the weights holds this turn: weights 3 and 1 give A, A, A, B, A, A, A, B…"""
    slot = (turn - 1) % sum(max(t.weight, 1) for t in targets)
    for target in targets:
        if slot < max(target.weight, 1):
            return target
        slot -= max(target.weight, 1)
    return targets[-1]
