"""OpenAI's Batch API: POST /v1/batches, GET /v1/batches[/{id}], POST /v1/batches/{id}/cancel."""

from __future__ import annotations

import logging

import redis
from flask import Blueprint, jsonify, request
from kombu.exceptions import KombuError

from llmproxy.batches import results, store
from llmproxy.batches.dispatch import DISPATCH_BATCH_TASK
from llmproxy.batches.states import BatchStatus
from llmproxy.errors import bad_request
from llmproxy.jobs import events
from llmproxy.jobs.queues import Queue
from web.auth import authenticate_client, current_key
from web.jobs_api import validate_metadata
from web.jsonbody import json_body
from web.listing import limit_param, list_response
from web.services import services
from web.session import commit, db

log = logging.getLogger(__name__)
bp = Blueprint("batches", __name__, url_prefix="/v1/batches")
bp.before_request(lambda: authenticate_client() and None)

FIELDS = {"input_file_id", "endpoint", "completion_window", "metadata", "output_expires_after"}


def hand_off(batch_id: str) -> None:
    """Ask a worker to enqueue the batch's lines; if the broker is down, the sweeper sends them later."""
    try:
        services().celery.send_task(DISPATCH_BATCH_TASK, args=[batch_id], queue=Queue.BATCH)
    except (KombuError, redis.RedisError, OSError):
        # The batch and its lines are stored: answering an error now would make the client submit it twice.
        log.warning("could not hand batch %s to the workers; the sweeper will send its lines", batch_id)


@bp.post("")
def create_batch():
    """Create a batch from an uploaded file: `in_progress` with one job per line, or `failed` naming bad lines."""
    data = json_body()
    unknown = set(data) - FIELDS
    if unknown:
        raise bad_request(f"Unknown field(s): {', '.join(sorted(unknown))}", code="unknown_field")
    for name in ("input_file_id", "endpoint", "completion_window"):
        if not isinstance(data.get(name), str) or not data[name]:
            raise bad_request(f"Missing required parameter: '{name}'", code="missing_field", param=name)
    batch = store.create_batch(
        db(),
        key=current_key(),
        input_file_id=data["input_file_id"],
        endpoint=data["endpoint"],
        completion_window=data["completion_window"],
        metadata=validate_metadata(data.get("metadata")),
        settings=services().settings,
        output_expires_after=data.get("output_expires_after"),
    )
    commit()
    if batch.status == BatchStatus.IN_PROGRESS:
        hand_off(batch.id)
    return jsonify(store.batch_json(db(), batch))


@bp.get("/<batch_id>")
def get_batch(batch_id):
    """The batch object, with live request counts while it runs."""
    return jsonify(store.batch_json(db(), store.get_own_batch(db(), current_key().id, batch_id)))


@bp.get("")
def list_batches():
    """This key's batches, newest first: ?after=&limit=."""
    page, has_more = store.list_batches(db(), current_key().id, limit=limit_param(), after=request.args.get("after"))
    return list_response([store.batch_json(db(), b) for b in page], has_more)


@bp.post("/<batch_id>/cancel")
def cancel_batch(batch_id):
    """Cancel: queued lines at once, running ones finish; `cancelled` (with partial results) when none runs."""
    batch = store.get_own_batch(db(), current_key().id, batch_id)
    cancelled = store.cancel_batch(db(), batch)
    commit()
    if cancelled:
        try:
            events.publish_cancelled(services().redis, cancelled)
        except redis.RedisError:
            # The cancel is committed; long-pollers of these lines see it when their wait ends.
            log.warning("could not wake the long-pollers of batch %s's cancelled lines", batch.id)
    if batch.status == BatchStatus.CANCELLING:
        results.finalize_if_done(
            services().session_factory, batch.id, retention_days=services().settings.retention_days
        )
        db().refresh(batch)
    return jsonify(store.batch_json(db(), batch))
