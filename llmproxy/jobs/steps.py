"""The steps a job tries: its model and fallbacks, each with the credential to use, and the retry policy."""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from llmproxy.billing.cost import Prices
from llmproxy.catalog.chains import DeploymentEntry, load_chain
from llmproxy.catalog.snapshots import Snapshots
from llmproxy.config import Settings
from llmproxy.jobs.deployment_choice import Target
from llmproxy.jobs.routing import RetryPolicy, Step
from llmproxy.keys.credentials import load_key_credentials
from llmproxy.keys.virtual_keys import KeyInfo, active_key_info
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


def job_key(session: Session, api_key_id: str, snapshots: Snapshots) -> KeyInfo | None:
    """The job's key as the web reads it: from the process's snapshots (dropped on any change), None once revoked."""
    return snapshots.get(("key-id", api_key_id), lambda: active_key_info(session, api_key_id))


def build_steps(
    session: Session, job: Job, settings: Settings, snapshots: Snapshots | None = None, *, key: KeyInfo | None = None
) -> list[Step]:
    """The job's model and its fallbacks, each with its deployments and the credential to use (or none: skipped).

    Credentials per deployment: the caller's saved key for its provider, else the deployment's own key,
    else its provider's configured key, else the environment's.
    Models the job's `key` may not use are left out of the chain.
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
    allowed = key.allowed_models if key is not None else None
    for entry in chain:
        if allowed is not None and entry.model not in allowed:
            continue
        targets = tuple(_target(d, saved, settings, job.api_key_id) for d in entry.deployments if d.provider_enabled)
        if not targets:
            continue  # every deployment disabled (or its provider): the model is not tried
        first = next((t for t in targets if t.endpoint is not None), targets[0])
        steps.append(
            Step(
                model=entry.model,
                provider=first.provider,
                kind=first.kind,
                endpoint=first.endpoint,
                deployment=first.deployment,
                targets=targets,
                prices=Prices(
                    entry.input_cost_per_1m,
                    entry.output_cost_per_1m,
                    entry.cached_input_cost_per_1m,
                    entry.cache_write_cost_per_1m,
                ),
            )
        )
    return steps


def _target(deployment: DeploymentEntry, saved: dict[str, str | None], settings: Settings, api_key_id: str) -> Target:
    """Where to call one deployment, with the credential to use (endpoint None: none, skipped)."""
    if deployment.provider in saved:
        secret = saved[deployment.provider]
        if secret is None:
            log.error(
                "saved key of %s for provider %s cannot be decrypted; skipping it", api_key_id, deployment.provider
            )
    else:
        secret = deployment.key or settings.provider_keys.get(deployment.provider)
    if secret is None and deployment.kind == "openai_compatible":
        secret = ""  # self-hosted OpenAI-compatible servers often need no key
    endpoint = None if secret is None else Endpoint(deployment.api_base, secret or None, deployment.upstream_model)
    return Target(
        deployment=deployment.id,
        provider=deployment.provider,
        kind=deployment.kind,
        endpoint=endpoint,
        weight=deployment.weight,
        rpm_limit=deployment.rpm_limit,
        tpm_limit=deployment.tpm_limit,
    )
