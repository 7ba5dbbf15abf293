"""What GET /v1/responses/{id} and its input_items show of a Responses job, whatever state it is in."""

from __future__ import annotations

from typing import Any

from llmproxy.jobs.states import JobStatus
from llmproxy.jsontypes import JSON
from llmproxy.responses.objects import PREFIX, skeleton
from llmproxy.responses.running import created_at, is_response
from llmproxy.responses.to_chat import input_items
from llmproxy.responses.validation import stores
from llmproxy.storage.models import Job

# Job statuses as a response's (a completed job's response says completed or incomplete itself).
_STATUS: dict[str, str] = {
    JobStatus.QUEUED: "queued",
    JobStatus.IN_PROGRESS: "in_progress",
    JobStatus.FAILED: "failed",
    JobStatus.CANCELLED: "cancelled",
}
_ID_PREFIX = {"message": "msg", "function_call": "fc", "function_call_output": "fco"}


def readable(job: Job) -> bool:
    """A stored response: a Responses job whose request did not say `store: false`."""
    return is_response(job) and stores(job.request)


def response_view(job: Job) -> JSON:
    """The response object as it stands: the stored one once completed, else its skeleton with the status."""
    if job.status == JobStatus.COMPLETED and isinstance(job.result, dict):
        return job.result
    view = skeleton(job.id, job.request, created_at=created_at(job), status=_STATUS.get(job.status, "in_progress"))
    if job.status in (JobStatus.FAILED, JobStatus.CANCELLED) and job.error:
        view["error"] = {"code": job.error.get("code") or "server_error", "message": job.error.get("message", "")}
    return view


def listed_input_items(job: Job) -> list[JSON]:
    """The response's own input as OpenAI lists it: every item with an id, message content as parts."""
    base = job.id.removeprefix(PREFIX)
    return [
        _listed(item, f"{_ID_PREFIX.get(item.get('type', 'message'), 'item')}_{base}_in{n}")
        for n, item in enumerate(input_items(job.request))
    ]


def _listed(item: JSON, item_id: str) -> JSON:
    kind = item.get("type", "message")
    listed: JSON = {**item, "type": kind, "id": item.get("id") or item_id}
    if kind == "message":
        content: Any = item["content"]
        if isinstance(content, str):
            part = "output_text" if item["role"] == "assistant" else "input_text"
            content = [{"type": part, "text": content}]
        listed["content"] = content
        listed.setdefault("status", "completed")
    return listed
