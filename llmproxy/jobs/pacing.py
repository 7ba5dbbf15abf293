"""Pacing of batch-queue jobs: admitted against a share of their key's limits before they are claimed."""

from __future__ import annotations

import redis
from sqlalchemy.orm import Session

from llmproxy.catalog.chains import allowed_chain, cached_price_chain
from llmproxy.catalog.snapshots import Snapshots
from llmproxy.config import Settings
from llmproxy.errors import ApiError
from llmproxy.jobs.steps import job_key
from llmproxy.keys import key_state
from llmproxy.limits.admission import admit
from llmproxy.storage.models import Job

MAX_DEFER_SECONDS = 30.0


class Deferred(Exception):
    """The job must wait for its key's capacity: run it again after `delay` seconds."""

    def __init__(self, delay: float) -> None:
        super().__init__(f"deferred for {delay:.2f}s")
        self.delay = delay


def pace(session: Session, client: redis.Redis, job: Job, settings: Settings, snapshots: Snapshots) -> ApiError | None:
    """Reserve the job's share of its key's limits; raise Deferred to wait, or return a refusal waiting can't fix."""
    # The key as the web reads it: a snapshot cached for a second and dropped on any config change (a revocation).
    key = job_key(session, job.api_key_id, snapshots)
    refused = key_state.refusal(key, job.model)  # revoked, or its model no longer allowed
    if key is None or refused is not None:
        return refused
    try:
        admit(
            client,
            key=key,
            request_id=job.id,
            body=job.request,
            chain=allowed_chain(cached_price_chain(snapshots, session, job.model), key.allowed_models),
            default_max_tokens=settings.default_max_tokens,
            share=settings.batch_limit_share,
            reservation_ttl=settings.reservation_ttl_seconds,
            operation=job.operation,
        )
    except ApiError as refusal:
        if refusal.headers.get("Retry-After") and refusal.code == "rate_limit_exceeded":
            raise Deferred(min(MAX_DEFER_SECONDS, float(refusal.headers["Retry-After"]))) from None
        return refusal
    return None
