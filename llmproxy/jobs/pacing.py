"""Pacing of batch-queue jobs: admitted against a share of their key's limits and their deployment's, then claimed."""

from __future__ import annotations

import random

import redis
from sqlalchemy.orm import Session

from llmproxy.catalog.chains import allowed_chain, cached_price_chain
from llmproxy.catalog.snapshots import Snapshots
from llmproxy.config import Settings
from llmproxy.errors import ApiError
from llmproxy.jobs.deployment_choice import DeploymentRouter, Wait
from llmproxy.jobs.deployment_quota import has_limits
from llmproxy.jobs.steps import build_steps, job_key
from llmproxy.keys import key_state
from llmproxy.keys.virtual_keys import KeyInfo
from llmproxy.limits.admission import admit
from llmproxy.operations import estimate_tokens
from llmproxy.storage.models import Job

MAX_DEFER_SECONDS = 30.0


class Deferred(Exception):
    """The job must wait for its key's capacity: run it again after `delay` seconds."""

    def __init__(self, delay: float) -> None:
        super().__init__(f"deferred for {delay:.2f}s")
        self.delay = delay


def deployment_router(client: redis.Redis, job: Job, settings: Settings, pinned: int | None = None) -> DeploymentRouter:
    """The router of one job's calls: its calls are named by its id, its tokens estimated only when a limit asks."""

    def tokens() -> int:
        return sum(estimate_tokens(job.operation, job.request, default_max_tokens=settings.default_max_tokens))

    return DeploymentRouter(
        client,
        strategy=settings.routing_strategy,
        cooldown_seconds=settings.deployment_cooldown_seconds,
        job_id=job.id,
        tokens=tokens,
        pinned=pinned,
    )


def pace(
    session: Session, client: redis.Redis, job: Job, settings: Settings, snapshots: Snapshots
) -> tuple[ApiError | None, int | None]:
    """Reserve the job's share of its key's limits, then a call in a deployment of its model with room.

    Returns (a refusal waiting can't fix, None) or (None, the deployment whose window holds the call: the
    run calls it first; None when the model's deployments have no limits); raises Deferred to wait.
    """
    # The key as the web reads it: a snapshot cached for a second and dropped on any config change (a revocation).
    key = job_key(session, job.api_key_id, snapshots)
    refused = key_state.refusal(key, job.model)  # revoked, or its model no longer allowed
    if key is None or refused is not None:
        return refused, None
    chain = allowed_chain(cached_price_chain(snapshots, session, job.model), key.allowed_models)
    try:
        admit(
            client,
            key=key,
            request_id=job.id,
            body=job.request,
            chain=chain,
            default_max_tokens=settings.default_max_tokens,
            share=settings.batch_limit_share,
            reservation_ttl=settings.reservation_ttl_seconds,
            operation=job.operation,
        )
    except ApiError as refusal:
        if refusal.headers.get("Retry-After") and refusal.code == "rate_limit_exceeded":
            raise Deferred(min(MAX_DEFER_SECONDS, float(refusal.headers["Retry-After"]))) from None
        return refusal, None
    limited = bool(chain) and any(d.rpm_limit or d.tpm_limit for d in chain[0].deployments)
    # Only a model with deployment limits needs its steps (credentials included) before the claim.
    return None, _hold_deployment(session, client, job, settings, snapshots, key) if limited else None


def _hold_deployment(
    session: Session, client: redis.Redis, job: Job, settings: Settings, snapshots: Snapshots, key: KeyInfo
) -> int | None:
    """Reserve the line's call in a deployment of its first model with room; raise Deferred while all are full.

    After the key's admission, so a line waiting here holds only its own key's capacity (its reservation is
    found again, not counted twice, when it comes back within the minute)."""
    steps = build_steps(session, job, settings, snapshots, key=key)
    if not steps or not any(has_limits(t) for t in steps[0].all_targets()):
        return None  # nothing to pace against: routing chooses at the call
    held = deployment_router(client, job, settings).hold(steps[0].model, steps[0].all_targets())
    if isinstance(held, Wait):
        # A little spread, so the lines that wait for the same slot do not all come back at the same instant.
        raise Deferred(min(MAX_DEFER_SECONDS, held.seconds + random.uniform(0.05, 0.5)))
    return None if held is None else held.deployment
