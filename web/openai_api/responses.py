"""OpenAI's Responses API: POST /v1/responses (waited for, streamed, or `background` as a job), GET and DELETE
/v1/responses/{id}, POST /v1/responses/{id}/cancel and GET /v1/responses/{id}/input_items.

Responses are jobs of the `responses` operation named `resp_…`: served through the queue like chat
completions, translated to chat for the providers (llmproxy.responses), billed and limited the same way."""

from __future__ import annotations

import time

from flask import Blueprint, Response, jsonify, request

from llmproxy import json_schema as js
from llmproxy.errors import ApiError, bad_request, not_found
from llmproxy.jobs.lookup import find_own_job
from llmproxy.jobs.response_deletion import delete_response
from llmproxy.jobs.response_history import with_history
from llmproxy.jobs.response_views import listed_input_items, readable, response_view
from llmproxy.jobs.states import FINAL_JOB_STATUSES
from llmproxy.jobs.submission import IDEMPOTENCY_KEY_SCHEMA
from llmproxy.operations import Operation
from llmproxy.responses.objects import new_response_id, skeleton
from llmproxy.responses.validation import response_request_schema, validate_response_request
from llmproxy.storage.models import Job
from web.auth import current_key, require_client
from web.context import db, resources
from web.jobs_api.jobs import cancel_own_job
from web.jsonbody import json_body
from web.listing import limit_param, limit_schema, list_schema
from web.openai_api.sse import ResponseEvents
from web.openai_api.waiting import first_of, price_chain, serve_waiting
from web.openapi.operation import Auth, Reply, json_reply, operation
from web.submission import submit_job

bp = Blueprint("responses", __name__, url_prefix="/v1/responses")
bp.before_request(require_client)

RESPONSE_SCHEMA = js.obj(
    {"id": js.string(), "object": js.const("response"), "status": js.string(), "output": js.array(js.obj())},
    required=["id", "object", "status", "output"],
)
_THE_RESPONSE = {200: json_reply("The response.", RESPONSE_SCHEMA)}


def _reply(job: Job, _status: int) -> Response:
    """A background response just stored (or replayed by its Idempotency-Key): the response, queued."""
    response = jsonify(response_view(job))
    response.headers["x-request-id"] = job.id
    return response


@bp.post("")
@operation(
    auth=Auth.KEY,
    body=response_request_schema(),
    headers={"Idempotency-Key": IDEMPOTENCY_KEY_SCHEMA},
    replies={
        200: Reply(
            "The response; with `stream: true`, its server-sent events; with `background: true`, queued.",
            {"application/json": RESPONSE_SCHEMA, "text/event-stream": js.string()},
            {"x-request-id": "The response's id."},
        )
    },
)
def create_response() -> Response:
    """Create a model response: waited for, streamed, or in the background (poll GET /v1/responses/{id})."""
    key = current_key()
    body = json_body()
    chain = price_chain(body)
    validate_response_request(db(), key, body, lookup=first_of(chain))
    body = with_history(db(), resources().redis, key.id, body)
    response_id = new_response_id()
    if body.get("background"):
        return submit_job(body, None, operation=Operation.RESPONSES, job_id=response_id, reply=_reply)
    stream = None
    if body.get("stream"):
        stream = ResponseEvents(skeleton(response_id, body, created_at=int(time.time()), status="in_progress"))
    return serve_waiting(key, body, chain, {}, operation=Operation.RESPONSES, stream=stream, job_id=response_id)


def own_response(response_id: str) -> Job:
    """This key's stored response; 404 for another key's, an unknown one, or one made with `store: false`."""
    try:
        job = find_own_job(db(), resources().redis, current_key().id, response_id)
    except ApiError as exc:
        raise not_found("response") from exc
    if not readable(job):
        raise not_found("response")
    return job


@bp.get("/<response_id>")
@operation(auth=Auth.KEY, replies=_THE_RESPONSE)
def get_response(response_id: str) -> Response:
    """The response as it stands (a background one: queued, in_progress, then its end)."""
    return jsonify(response_view(own_response(response_id)))


@bp.post("/<response_id>/cancel")
@operation(auth=Auth.KEY, replies=_THE_RESPONSE)
def cancel_response(response_id: str) -> Response:
    """Cancel a background response (queued: at once; running: its worker stops it)."""
    job = own_response(response_id)
    if not job.request.get("background"):
        raise bad_request("Only a background response can be cancelled.", param="response_id")
    cancel_own_job(job)
    return jsonify(response_view(own_response(response_id)))


@bp.delete("/<response_id>")
@operation(
    auth=Auth.KEY,
    replies={
        200: json_reply(
            "Deleted.",
            js.record({"id": js.string(), "object": js.const("response"), "deleted": js.const(True)}),
        )
    },
)
def remove_response(response_id: str) -> Response:
    """Delete a stored response that has ended (its usage stays in the ledger)."""
    job = own_response(response_id)
    if job.status not in FINAL_JOB_STATUSES:
        raise bad_request("The response is still running; cancel it first.", param="response_id")
    delete_response(db(), resources().redis, job.id)
    return jsonify({"id": job.id, "object": "response", "deleted": True})


@bp.get("/<response_id>/input_items")
@operation(
    auth=Auth.KEY,
    query={"limit": limit_schema(), "order": js.enum(("asc", "desc")), "after": js.string()},
    replies={200: json_reply("The response's input items.", list_schema(js.obj()))},
)
def input_items(response_id: str) -> Response:
    """The response's own input, as items with ids: ?limit=&order=asc|desc (default desc)&after=<item id>."""
    items = listed_input_items(own_response(response_id))
    order = request.args.get("order", "desc")
    if order not in ("asc", "desc"):
        raise bad_request("'order' must be 'asc' or 'desc'", param="order")
    if order == "desc":
        items.reverse()
    after = request.args.get("after")
    if after is not None:
        ids = [item["id"] for item in items]
        if after not in ids:
            raise bad_request(f"No input item '{after}' in this response.", param="after")
        items = items[ids.index(after) + 1 :]
    limit = limit_param()
    page = items[:limit]
    return jsonify(
        {
            "object": "list",
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": len(items) > limit,
        }
    )
