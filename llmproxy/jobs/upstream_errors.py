"""What a caller is told about an upstream failure, and what the log keeps of it.

An upstream's own error text may carry the operator's (masked) key, organisation or project id
("Rate limit reached for gpt-4 in organization org-…", "Incorrect API key provided: sk-…****abcd").
So callers get the provider name, model, status, our outcome code and a fixed message per code
(`attempts` of a job, the error of a failed job, a batch's error lines, a synchronous error body);
the upstream's text goes to the log at WARNING, with the job id, masked (`providers.redaction`).

One exception: a 400/413/422 about the caller's own request (an invalid parameter, a body too large)
keeps the upstream's message, masked and shortened, with its `param`/`code` when they are plain
identifiers, because "Invalid value for 'temperature'" is what the caller needs to fix it and those
statuses describe the request, not the operator's account. Any other 4xx gets a fixed message.
"""

from __future__ import annotations

import logging
import re

from llmproxy.errors import error_object
from llmproxy.jsontypes import JSON
from llmproxy.providers.errors import ProviderError
from llmproxy.providers.redaction import mask_secrets

log = logging.getLogger(__name__)

OUTCOME_MESSAGES = {
    "rate_limited": "The provider is rate limiting or out of quota",
    "unavailable": "The provider is unavailable or answered with a server error",
    "timeout": "The provider did not answer in time",
    "connection_error": "The provider could not be reached",
    "auth_failed": "The provider refused the credentials configured for it",
    "model_not_found": "The provider does not serve this model",
    "context_too_long": "The request is longer than this model's context window",
    "bad_request": "The provider rejected the request",
    "stream_broken": "The provider's stream broke",
    "no_credentials": "No credentials are configured for this provider",
    "error": "The provider call failed",
}
STREAM_INTERRUPTED = "The upstream stream broke after it had started"
CALLER_FAULT_STATUSES = frozenset({400, 413, 422})  # the request itself is wrong: its message helps the caller
MAX_MESSAGE_CHARS = 500
_IDENTIFIER = re.compile(r"^[A-Za-z0-9_.\[\]-]{1,100}$")


def attempt_message(outcome: str) -> str:
    """The fixed message a caller sees for an attempt that ended with `outcome`."""
    return OUTCOME_MESSAGES.get(outcome, OUTCOME_MESSAGES["error"])


def public_attempts(attempts: list[JSON]) -> list[JSON]:
    """Attempts as callers see them: our fields only, failures with their fixed message.

    Rebuilt on the way out, so a row stored before upstream text was kept out of attempts shows none either.
    """
    shown: list[JSON] = []
    for attempt in attempts:
        public = {name: attempt.get(name) for name in ("provider", "model", "outcome", "status_code", "latency_ms")}
        if attempt.get("outcome") not in ("ok", "cancelled"):
            public["message"] = attempt_message(str(attempt.get("outcome")))
        shown.append(public)
    return shown


def log_failure(job_id: str, provider: str, model: str, exc: ProviderError) -> None:
    """Log an upstream failure in full (masked), so operators keep what callers no longer see."""
    log.warning(
        "job %s: %s/%s attempt failed: %s (status %s): %s",
        job_id,
        provider,
        model,
        exc.outcome,
        exc.status_code,
        mask_secrets(exc.message),
    )


def caller_error(exc: ProviderError) -> JSON:
    """The error object for an upstream 4xx that ends the request without a fallback (see the module)."""
    status = exc.status_code or 400
    upstream = exc.upstream_body.get("error") if isinstance(exc.upstream_body, dict) else None
    if status in CALLER_FAULT_STATUSES and isinstance(upstream, dict) and upstream.get("message"):
        message = mask_secrets(str(upstream["message"]))
        if len(message) > MAX_MESSAGE_CHARS:
            message = message[: MAX_MESSAGE_CHARS - 1] + "…"
        etype = _identifier(upstream.get("type"))
        return error_object(
            message,
            type=etype if etype and etype.endswith("_error") else "invalid_request_error",
            param=_identifier(upstream.get("param")),
            code=_identifier(upstream.get("code")) or "upstream_bad_request",
        )
    return error_object(
        f"{attempt_message(exc.outcome)} (HTTP {status})", type="invalid_request_error", code="upstream_bad_request"
    )


def _identifier(value: object) -> str | None:
    """A short plain name (a parameter, type or code), masked; None for anything else."""
    if not isinstance(value, str) or not _IDENTIFIER.match(value):
        return None
    return value if mask_secrets(value) == value else None
