"""Which deployment of a model to call: healthy ones by weight (or fewest in flight) with room, cooling ones last.

Health is shared by every worker through Redis. A deployment that failed with a retryable error of the
taxonomy (429, 5xx, timeout: `ProviderError.retryable`) cools down for the provider's `retry_after`, else
DEPLOYMENT_COOLDOWN_SECONDS; while it cools it is chosen only if no other deployment of its model is
healthy. A deployment with its own `rpm_limit`/`tpm_limit` takes each call into its rolling window
(llmproxy.jobs.deployment_quota): one at its limits is passed over for one with room; an interactive call
goes even when all are full (limits steer it, never refuse it), a batch line waits (`hold`). A model with
one usable deployment costs no Redis call for its choice; with several, one pipelined round trip; each
call to a deployment with limits, one script more.

`weighted` gives each deployment its weight's share of its model's calls in turn, counted in Redis across
every worker (3:1 is exactly three calls in four, where weighted random would drift by a few percent over
hundreds of calls); `least_busy` picks the deployment with the fewest calls in flight, counted in Redis
while they run.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum

import redis

from llmproxy.jobs.deployment_quota import Quotas, has_limits
from llmproxy.limits.reservations import Admission
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


def turn_key(model: str) -> str:
    """How many weighted choices among the model's deployments were made: whose turn it is."""
    return f"llmproxy:model:{model}:turn"


def cooldowns(client: redis.Redis, deployments: Sequence[int]) -> dict[int, float]:
    """Seconds each deployment still cools down (0: healthy), in one round trip."""
    pipe = client.pipeline(transaction=False)
    for deployment in deployments:
        pipe.pttl(cool_key(deployment))
    return {d: max(0, int(ms)) / 1000 for d, ms in zip(deployments, pipe.execute(), strict=True)}


@dataclass(frozen=True)
class Wait:
    """Every deployment is at its own limits: a batch line waits `seconds` for one to have room."""

    seconds: float


class DeploymentRouter:
    """Chooses, cools down and counts one job's deployments; without a Redis client, always the first usable one.

    `job_id` names the job's calls in deployments' windows (llmproxy.jobs.deployment_quota): its first call
    is the job id itself, so the call pacing reserved for a batch line (`pinned`, its deployment) is that
    same call; `tokens` estimates one call, asked only of a deployment with a tpm_limit.
    """

    def __init__(
        self,
        client: redis.Redis | None = None,
        *,
        strategy: str = Strategy.WEIGHTED,
        cooldown_seconds: float = 5.0,
        job_id: str | None = None,
        tokens: Callable[[], int] = lambda: 0,
        pinned: int | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._client = client
        self._strategy = Strategy(strategy)
        self._cooldown = cooldown_seconds
        self._quotas = None if client is None else Quotas(client, tokens, clock)
        self._job_id = job_id or uuid.uuid4().hex
        self._calls = 1 if pinned is not None else 0
        self._pinned = pinned
        self._held: dict[int, str] = {}  # deployment -> the id of the call reserved in its window

    def choose(self, model: str, targets: Sequence[Target], exclude: Collection[int | None] = ()) -> Target | None:
        """The target to call: one with a credential not in `exclude`, healthy and with room if any is."""
        usable = [t for t in targets if t.endpoint is not None and t.deployment not in exclude]
        if not usable:
            return None
        pinned = next((t for t in usable if self._pinned is not None and t.deployment == self._pinned), None)
        self._pinned = None  # only the first choice: a retry reserves a call of its own
        if pinned is not None and pinned.deployment is not None:
            self._held[pinned.deployment] = self._job_id
            return pinned
        order = self._order(model, usable)
        booked = self._book(order)
        if isinstance(booked, Target):
            return booked
        self._take(order[0], force=True)  # all full: steer only, never refuse; counted so batch lines see it
        return order[0]

    def hold(self, model: str, targets: Sequence[Target]) -> Target | Wait | None:
        """For a batch line: the target whose window took its call, or how long to wait for one with room."""
        usable = [t for t in targets if t.endpoint is not None]
        if not usable:
            return None
        order = self._order(model, usable)
        booked = self._book(order)
        if booked is None:  # no wait helps (each is too small for the call): call it anyway, as choose would
            self._take(order[0], force=True)
            return order[0]
        return booked

    def _order(self, model: str, usable: list[Target]) -> list[Target]:
        """The usable targets, best first: by turn (or fewest in flight) among the healthy, then the cooling."""
        client = self._client
        if len(usable) <= 1 or client is None or any(t.deployment is None for t in usable):
            return usable
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
            return usable
        healthy = [t for i, t in enumerate(usable) if cooling[i] is None]
        rest = [t for i, t in enumerate(usable) if cooling[i] is not None]
        if not healthy:
            healthy, rest = usable, []
        if self._strategy == Strategy.LEAST_BUSY:
            busy = {d: int(count or 0) for d, count in zip(ids, counts, strict=True)}
            # Ties go to the heavier deployment, then the first.
            return sorted(healthy, key=lambda t: (busy[t.deployment or 0], -t.weight)) + rest
        first = _by_turn(healthy, int(counts))
        return [first, *(t for t in healthy if t is not first), *rest]

    def _book(self, order: list[Target]) -> Target | Wait | None:
        """The first target in `order` with room for a call (reserved); else the shortest wait, None if none helps."""
        waits: list[float] = []
        for target in order:
            if self._quotas is None or not has_limits(target):
                return target
            admission = self._take(target)
            if admission is None or admission.allowed:
                return target
            if admission.retry_after is not None:
                waits.append(admission.retry_after)
        return Wait(min(waits)) if waits else None

    def _take(self, target: Target, *, force: bool = False) -> Admission | None:
        if self._quotas is None or not has_limits(target) or target.deployment is None:
            return None
        call_id = self._job_id if self._calls == 0 else f"{self._job_id}:{self._calls}"
        admission = self._quotas.take(target, call_id, force=force)
        if admission is None or admission.allowed:
            self._calls += 1
            self._held[target.deployment] = call_id
        return admission

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
        """Count the call in flight while it runs (least_busy); a call that fails gives its reserved tokens back."""
        in_flight = self._strategy == Strategy.LEAST_BUSY and self._client is not None and target.deployment
        counted = in_flight and self._count(target, 1)
        try:
            yield
        except BaseException:
            held = self._held.pop(target.deployment or 0, None)
            if held is not None and self._quotas is not None:
                self._quotas.release(target, held)
            raise
        finally:
            if counted:
                self._count(target, -1)

    def used(self, target: Target, tokens: int) -> None:
        """A served call: its deployment's window holds the tokens the provider reported, not the estimate."""
        held = self._held.pop(target.deployment or 0, None)
        if held is not None and self._quotas is not None and target.tpm_limit is not None:
            self._quotas.settle(target, held, tokens)

    def _count(self, target: Target, delta: int) -> bool:
        assert self._client is not None and target.deployment is not None
        try:
            pipe = self._client.pipeline(transaction=False)
            pipe.incrby(busy_key(target.deployment), delta)
            pipe.expire(busy_key(target.deployment), BUSY_TTL_SECONDS)
            pipe.execute()
        except redis.RedisError:
            log.warning("could not count a call to deployment %s in flight", target.deployment, exc_info=True)
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
