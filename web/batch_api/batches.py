"""OpenAI's Batch API: POST /v1/batches, GET /v1/batches[/{id}], POST /v1/batches/{id}/cancel."""

from __future__ import annotations

import logging

import redis
from flask import Blueprint, jsonify, request

from llmproxy import json_schema as js
from llmproxy.batches import cancel, store
from llmproxy.batches.states import BatchStatus
from llmproxy.batches.store import BATCH_REQUEST_SCHEMA, BATCH_SCHEMA
from llmproxy.errors import bad_request
from llmproxy.jobs import events
from llmproxy.jobs.queues import FINALIZE_BATCH_TASK, VALIDATE_BATCH_TASK
from llmproxy.limits.queued import admit_submission, forget_queued
from llmproxy.validation import reject_unknown, validate_metadata
from web.auth import current_key, require_client
from web.context import commit, db, resources
from web.dispatch import send_batch_task
from web.jsonbody import json_body
from web.listing import limit_param, limit_schema, list_response, list_schema
from web.openapi.operation import Auth, json_reply, operation

log = logging.getLogger(__name__)
bp = Blueprint("batches", __name__, url_prefix="/v1/batches")
bp.before_request(require_client)

_THE_BATCH = {200: json_reply("The batch.", BATCH_SCHEMA)}


@bp.post("")
@operation(auth=Auth.KEY, body=BATCH_REQUEST_SCHEMA, replies=_THE_BATCH)
def create_batch():
    """Create a batch from an uploaded file: `validating` at once; a worker checks its lines, then runs or fails it."""
    data = json_body()
    reject_unknown(data, set(BATCH_REQUEST_SCHEMA["properties"]))
    for name in ("input_file_id", "endpoint", "completion_window"):
        if not isinstance(data.get(name), str) or not data[name]:
            raise bad_request(f"Missing required parameter: '{name}'", code="missing_field", param=name)
    key = current_key()
    batch = store.create_batch(
        db(),
        key=key,
        input_file_id=data["input_file_id"],
        endpoint=data["endpoint"],
        completion_window=data["completion_window"],
        metadata=validate_metadata(data.get("metadata")),
        settings=resources().settings,
        output_expires_after=data.get("output_expires_after"),
    )
    # Budget left, and room among the key's queued jobs: the batch holds one place until its validation admits
    # its lines (RPM/TPM wait in the workers). Refused: nothing is committed.
    admit_submission(resources().redis, key=key, job_ids=[batch.id], settings=resources().settings)
    try:
        commit()
    except Exception:
        forget_queued(resources().redis, key.id, [batch.id])  # counted, but never stored
        raise
    created = store.batch_json(db(), batch)  # as stored: `validating`, whatever the worker does next
    send_batch_task(VALIDATE_BATCH_TASK, batch.id)
    return jsonify(created)


@bp.get("/<batch_id>")
@operation(auth=Auth.KEY, replies=_THE_BATCH)
def get_batch(batch_id):
    """The batch object, with live request counts while it runs."""
    return jsonify(store.batch_json(db(), store.get_own_batch(db(), current_key().id, batch_id)))


@bp.get("")
@operation(
    auth=Auth.KEY,
    query={"after": js.string(), "limit": limit_schema()},
    replies={200: json_reply("This key's batches, newest first.", list_schema(BATCH_SCHEMA))},
)
def list_batches():
    """This key's batches, newest first: ?after=&limit=."""
    page, has_more = store.list_batches(db(), current_key().id, limit=limit_param(), after=request.args.get("after"))
    return list_response([store.batch_json(db(), b) for b in page], has_more)


@bp.post("/<batch_id>/cancel")
@operation(auth=Auth.KEY, replies=_THE_BATCH)
def cancel_batch(batch_id):
    """Cancel: queued lines at once, running ones finish; `cancelling`, then `cancelled` with partial results."""
    batch = store.get_own_batch(db(), current_key().id, batch_id)
    cancelled = cancel.cancel_batch(db(), resources().redis, batch)
    commit()
    if cancelled:
        try:
            events.publish_cancelled(resources().redis, cancelled)
        except redis.RedisError:
            # The cancel is committed; long-pollers of these lines see it when their wait ends.
            log.warning("could not wake the long-pollers of batch %s's cancelled lines", batch.id)
    if batch.status == BatchStatus.CANCELLING:
        # A worker writes the partial results once no line runs (the sweeper does if this message is lost).
        send_batch_task(FINALIZE_BATCH_TASK, batch.id)
    return jsonify(store.batch_json(db(), batch))
