"""The cap on completion tokens every upstream call carries, so no answer can cost more than was reserved.

A caller's `max_completion_tokens` (else `max_tokens`) caps each choice; a request with neither is
reserved at DEFAULT_MAX_TOKENS per choice, and that same figure is sent upstream as the cap, so the
upstream cannot produce more than the reservation covers. Each provider names the field it honours
(`Provider.output_cap_field`): OpenAI's `max_completion_tokens` (its reasoning models refuse
`max_tokens`, and it counts reasoning tokens too), `max_tokens` for Mistral and other servers.
"""

from __future__ import annotations

from typing import Any

from llmproxy.jsontypes import JSON


def _positive_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def requested_output_limit(body: JSON) -> int | None:
    """The caller's own cap on completion tokens per choice (max_completion_tokens, else max_tokens), or None."""
    return _positive_int(body.get("max_completion_tokens")) or _positive_int(body.get("max_tokens"))


def output_limit(body: JSON, *, default_max_tokens: int) -> int:
    """Completion tokens per choice the request may produce: the caller's cap, else the deployment's default."""
    return requested_output_limit(body) or default_max_tokens


def choice_count(body: JSON) -> int:
    """How many choices (`n`) the request asks for."""
    return _positive_int(body.get("n")) or 1


def capped_body(body: JSON, field: str, cap: int | None) -> JSON:
    """The body to send upstream: as it is when the caller capped the output (or `cap` is None), else with
    `field` set to `cap` (a shallow copy: the caller's request as stored is left alone)."""
    if cap is None or requested_output_limit(body) is not None:
        return body
    return {**body, field: cap}
