"""The steps a job tries: its model and fallbacks, each with the credential to use, and the retry policy."""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from llmproxy.billing.cost import Prices
from llmproxy.catalog.chains import load_chain
from llmproxy.catalog.snapshots import Snapshots
from llmproxy.config import Settings
from llmproxy.jobs.routing import RetryPolicy, Step
from llmproxy.keys.credentials import load_key_credentials
from llmproxy.providers import Endpoint, Timeouts
from llmproxy.storage.models import Job

log = logging.getLogger(__name__)


def retry_policy(settings: Settings) -> RetryPolicy:
    """The retry policy the settings describe."""
    return RetryPolicy(
        retries=settings.retry_attempts,
        base_seconds=settings.retry_base_seconds,
        max_seconds=settings.retry_max_seconds,
        timeouts=Timeouts(connect=settings.upstream_connect_timeout, read=settings.upstream_read_timeout),
    )


def build_steps(session: Session, job: Job, settings: Settings, snapshots: Snapshots | None = None) -> list[Step]:
    """The job's model and its fallbacks, each with the credential to use (or none: skipped).

    Credentials: the caller's saved key, else the provider's configured key, else the environment's.
    """
    snapshots = snapshots or Snapshots(0)
    chain = snapshots.get(
        ("chain", job.model), lambda: load_chain(session, job.model, encryption_key=settings.encryption_key)
    )
    saved = snapshots.get(
        ("credentials", job.api_key_id),
        lambda: load_key_credentials(session, api_key_id=job.api_key_id, encryption_key=settings.encryption_key),
    )
    steps = []
    for entry in chain:
        if not entry.provider_enabled:
            continue
        if entry.provider in saved:
            secret = saved[entry.provider]
            if secret is None:
                log.error(
                    "saved key of %s for provider %s cannot be decrypted; skipping it", job.api_key_id, entry.provider
                )
        else:
            secret = entry.provider_key or settings.provider_keys.get(entry.provider)
        if secret is None and entry.kind == "openai_compatible":
            secret = ""  # self-hosted OpenAI-compatible servers often need no key
        endpoint = None if secret is None else Endpoint(entry.api_base, secret or None, entry.upstream_model)
        steps.append(
            Step(
                model=entry.model,
                provider=entry.provider,
                kind=entry.kind,
                endpoint=endpoint,
                prices=Prices(entry.input_cost_per_1m, entry.output_cost_per_1m, entry.cached_input_cost_per_1m),
            )
        )
    return steps
