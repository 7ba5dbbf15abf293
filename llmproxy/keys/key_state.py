"""Whether a key may still run a piece of work: revoked, or no longer allowed the work's model.

Two readers, each at near-zero cost per job:
* work about to start reads the key through the process's snapshots (llmproxy.catalog.snapshots: a
  dict lookup; the configuration version every claim reads drops it when the key changes);
* running work reads the key's *state mark* in Redis, in the same MGET as its cancel flag
  (llmproxy.jobs.stopping). The admin API and the CLI set the mark when they revoke a key or change
  its allowed models: `revoked`, or the JSON list of the models it may use; no mark, no restriction.
"""

from __future__ import annotations

import json

import redis

from llmproxy.errors import ApiError, forbidden, unauthorized
from llmproxy.keys.virtual_keys import KeyInfo
from llmproxy.storage.models import ApiKey

# Longer than any run lasts: queued work reads the key itself, only running work needs the mark.
STATE_TTL_SECONDS = 24 * 3600
REVOKED = b"revoked"


def state_key(key_id: str) -> str:
    """Redis key of a key's state mark."""
    return f"llmproxy:key:{key_id}:state"


def publish_state(client: redis.Redis, key: ApiKey) -> None:
    """Set (or clear) the key's state mark after a committed change, for the work it has running."""
    if key.revoked_at is not None:
        client.set(state_key(key.id), REVOKED, ex=STATE_TTL_SECONDS)
    elif key.allowed_models is not None:
        client.set(state_key(key.id), json.dumps(key.allowed_models), ex=STATE_TTL_SECONDS)
    else:
        client.delete(state_key(key.id))


def revoked() -> ApiError:
    """401 for work whose key was revoked."""
    return unauthorized("The key of this request was revoked")


def model_not_allowed(model: str) -> ApiError:
    """403 for work whose key may no longer use its model."""
    return forbidden(f"This key may not use the model `{model}`", "model_not_allowed")


def refusal(key: KeyInfo | None, model: str) -> ApiError | None:
    """Why this key (None: unknown or revoked) may not run work on `model`, or None if it may."""
    if key is None:
        return revoked()
    if key.allowed_models is not None and model not in key.allowed_models:
        return model_not_allowed(model)
    return None


def refusal_from_mark(mark: bytes | None, model: str) -> ApiError | None:
    """`refusal` as the key's state mark (its raw value, None when unset) tells it."""
    if mark is None:
        return None
    if mark == REVOKED:
        return revoked()
    allowed = json.loads(mark)
    return None if model in allowed else model_not_allowed(model)
