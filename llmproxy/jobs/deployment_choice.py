"""Which deployment of a model to call: healthy ones by weight (or fewest calls in flight), cooling ones last.

Health is shared by every worker through Redis. A deployment that failed with a retryable error of the
taxonomy (429, 5xx, timeout: `ProviderError.retryable`) cools down for the provider's `retry_after`, else
DEPLOYMENT_COOLDOWN_SECONDS; while it cools it is chosen only if no other deployment of its model is
healthy. A model with one usable deployment costs no Redis call; with several, one pipelined round trip.

`weighted` gives each deployment its weight's share of its model's calls in turn, counted in Redis across
every worker (3:1 is exactly three calls in four, never a random drift); `least_busy` picks the deployment
with the fewest calls in flight, counted in Redis while they run.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterator, Sequence
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
        self, client: redis.Redis | None = None, *, strategy: str = Strategy.WEIGHTED, cooldown_seconds: float = 5.0
    ) -> None:
        self._client = client
        self._strategy = Strategy(strategy)
        self._cooldown = cooldown_seconds

    def choose(self, model: str, targets: Sequence[Target], exclude: Collection[int | None] = ()) -> Target | None:
        """The target to call: one with a credential not in `exclude`, healthy if any is; None when there is none."""
        usable = [t for t in targets if t.endpoint is not None and t.deployment not in exclude]
        client = self._client
        if len(usable) <= 1 or client is None or any(t.deployment is None for t in usable):
            return usable[0] if usable else None
        ids = [t.deployment for t in usable if t.deployment is not None]
        try:
            pipe = client.pipeline(transaction=False)
            pipe.mget([cool_key(d) for d in ids])
            if self._strategy == Strategy.LEAST_BUSY:
                pipe.mget([busy_key(d) for d in ids])
            else:
                pipe.incr(turn_key(model))
            cooling, counts = pipe.execute()
        except redis.RedisError:
            log.warning("deployment health unavailable; calling the first deployment of %s", model, exc_info=True)
            return usable[0]
        healthy = [t for t, cool in zip(usable, cooling, strict=True) if cool is None] or usable
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
        """Count the call as in flight while it runs (least_busy only: weighted needs no count)."""
        if self._strategy != Strategy.LEAST_BUSY or self._client is None or target.deployment is None:
            yield
            return
        key = busy_key(target.deployment)
        counted = self._count(key, +1)
        try:
            yield
        finally:
            if counted:
                self._count(key, -1)

    def _count(self, key: str, delta: int) -> bool:
        assert self._client is not None
        try:
            pipe = self._client.pipeline(transaction=False)
            pipe.incrby(key, delta)
            pipe.expire(key, BUSY_TTL_SECONDS)
            pipe.execute()
        except redis.RedisError:
            log.warning("could not count a call in flight (%s)", key, exc_info=True)
            return False
        return True


def _by_turn(targets: Sequence[Target], turn: int) -> Target:
    """The target whose share of the weights holds this turn: weights 3 and 1 give A, A, A, B, A, A, A, B…"""
    slot = (turn - 1) % sum(max(t.weight, 1) for t in targets)
    for target in targets:
        if slot < max(target.weight, 1):
            return target
        slot -= max(target.weight, 1)
    return targets[-1]
