"""Checks on a submitted job: its metadata, its Idempotency-Key, and whether it replays an earlier submission."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from llmproxy import json_schema as js
from llmproxy.errors import ApiError, bad_request
from llmproxy.jobs.store import find_by_idempotency_key
from llmproxy.operations import OPERATION_OF_URL, Operation
from llmproxy.storage.models import Job
from llmproxy.validation import reject_unknown, validate_metadata, validate_metadata_schema

MAX_IDEMPOTENCY_KEY = 255
IDEMPOTENCY_KEY_SCHEMA = js.string(minLength=1, maxLength=MAX_IDEMPOTENCY_KEY)


def validate_idempotency_key(value: str | None) -> str | None:
    """The Idempotency-Key header: 1 to 255 characters (no U+0000: it is stored as text), or absent."""
    if value is not None and (not 0 < len(value) <= MAX_IDEMPOTENCY_KEY or "\x00" in value):
        raise bad_request(
            "Idempotency-Key must be 1 to 255 characters, none of them NUL", code="invalid_idempotency_key"
        )
    return value or None


def replayed_job(session: Session, *, api_key_id: str, idempotency_key: str, fingerprint: str) -> Job | None:
    """The job an earlier request with this Idempotency-Key created (422 if its body differed), or None."""
    existing = find_by_idempotency_key(session, api_key_id, idempotency_key)
    if existing is not None and existing.request_hash != fingerprint:
        raise ApiError(422, "This Idempotency-Key was used with a different request body", code="idempotency_mismatch")
    return existing


def idempotency_conflict() -> ApiError:
    """409: a request with the same Idempotency-Key is being stored right now."""
    return ApiError(409, "A request with this Idempotency-Key is in flight; retry shortly", code="idempotency_conflict")


def job_schema(*bodies: js.Schema) -> js.Schema:
    """The schema of a `POST /v1/jobs` body: a request of one of these APIs (by `endpoint`), with metadata."""
    return js.obj(
        {
            "endpoint": js.enum(OPERATION_OF_URL),
            "body": js.one_of(*bodies),
            "metadata": validate_metadata_schema(),
        },
        required=["body"],
        extra=False,
    )


def job_body(data: dict[str, Any]) -> tuple[Operation, dict[str, Any], dict[str, str] | None]:
    """(operation, body, metadata) of a `POST /v1/jobs` request: `{"endpoint"?, "body", "metadata"?}`.

    `endpoint` is the OpenAI path the body is for, as a batch line's `url`: chat completions when absent.
    """
    reject_unknown(data, {"body", "metadata", "endpoint"})
    endpoint = data.get("endpoint", Operation.CHAT.url)
    operation = OPERATION_OF_URL.get(endpoint) if isinstance(endpoint, str) else None
    if operation is None:
        raise bad_request(f"'endpoint' must be one of {', '.join(OPERATION_OF_URL)}", param="endpoint")
    body = data.get("body")
    if not isinstance(body, dict):
        raise bad_request("'body' must be a request object", code="missing_field", param="body")
    return operation, body, validate_metadata(data.get("metadata"))
