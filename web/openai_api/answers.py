"""How a waited-for job is answered: its final response, a 202 when `Prefer: wait` ran out, or a 504."""

from __future__ import annotations

from flask import Response, g, jsonify

from llmproxy.errors import ApiError
from llmproxy.jobs.events import Cancelled, Done
from llmproxy.jobs.lookup import find_own_job
from llmproxy.jobs.states import JobStatus
from web.auth import current_key
from web.context import db, resources
from web.submission import job_response


def result_headers(job_id: str, done: Done | None = None) -> dict[str, str]:
    """The x-request-id, x-llmproxy-* and x-ratelimit-* headers of a finished (or started) job."""
    headers = {"x-request-id": job_id, **g.get("ratelimit_headers", {})}
    if done is not None:
        if done.served_provider and done.served_model:
            headers["x-llmproxy-provider"] = done.served_provider
            headers["x-llmproxy-model"] = done.served_model
        if done.cost_usd is not None:
            headers["x-llmproxy-cost-usd"] = done.cost_usd
        headers["x-llmproxy-attempts"] = str(done.attempts)
    return headers


def final_response(job_id: str, end: Done | Cancelled) -> Response:
    """The chat completion, or the job's error with its status."""
    if isinstance(end, Done) and end.status == JobStatus.COMPLETED:
        response = jsonify(end.result)
    else:
        response = jsonify({"error": end.error})
        response.status_code = end.error_status or 502
    response.headers.update(result_headers(job_id, end if isinstance(end, Done) else None))
    return response


def still_running(job_id: str, wait: float) -> Response:
    """202 with the job after `Prefer: wait=N` ran out; the job goes on."""
    response = job_response(find_own_job(db(), resources().redis, current_key().id, job_id), 202)
    response.headers["Preference-Applied"] = f"wait={wait:g}"
    response.headers.update(g.get("ratelimit_headers", {}))
    return response


def sync_timeout(job_id: str) -> ApiError:
    """504: the wait ran out; the job still completes and stays readable."""
    return ApiError(
        504,
        f"The request did not finish in time; it is still running as job {job_id}. Read it at /v1/jobs/{job_id}.",
        type="timeout",
        code="sync_timeout",
        headers=result_headers(job_id),
    )
