"""The dashboard's jobs and batches page: every key's newest jobs by status, batches with their progress and
result files (downloadable here, as the admin), the page refreshing itself on request."""

from __future__ import annotations

from typing import Any

from flask import abort, render_template, request
from sqlalchemy import select

from llmproxy.batches.states import BatchStatus
from llmproxy.batches.store import batch_json
from llmproxy.jobs.lookup import as_they_are_now
from llmproxy.jobs.serialize import job_json
from llmproxy.jobs.states import JobStatus
from llmproxy.storage.models import ApiKey, Batch, Job, StoredFile
from web.batch_api.files import download
from web.context import db, resources
from web.dashboard.blueprint import bp
from web.dashboard.signin import admin_page

JOBS_SHOWN, BATCHES_SHOWN = 50, 25
REFRESH_SECONDS = 5


@bp.get("/work")
@admin_page
def work() -> Any:
    """The newest jobs (?job_status= filters them) and batches (?batch_status=), ?live=1 to refresh every 5 s."""
    job_status = request.args.get("job_status") or None
    batch_status = request.args.get("batch_status") or None
    if job_status not in (None, *JobStatus) or batch_status not in (None, *BatchStatus):
        abort(400, "Unknown status.")
    names = dict(db().execute(select(ApiKey.id, ApiKey.name)).tuples().all())
    jobs = select(Job).order_by(Job.created_at.desc(), Job.id).limit(JOBS_SHOWN)
    if job_status:
        jobs = jobs.where(Job.status == job_status)
    rows = as_they_are_now(resources().redis, list(db().scalars(jobs)))  # in-flight ones as they are now
    batches = select(Batch).order_by(Batch.created_at.desc(), Batch.id).limit(BATCHES_SHOWN)
    if batch_status:
        batches = batches.where(Batch.status == batch_status)
    shown = [_with_progress(batch_json(db(), b), names.get(b.api_key_id)) for b in db().scalars(batches)]
    return render_template(
        "dashboard/work.html",
        jobs=[{**job_json(j), "key_name": names.get(j.api_key_id)} for j in rows],
        batches=shown,
        job_statuses=list(JobStatus),
        batch_statuses=list(BatchStatus),
        job_status=job_status or "",
        batch_status=batch_status or "",
        live=request.args.get("live") == "1",
        refresh_seconds=REFRESH_SECONDS,
    )


@bp.get("/files/<file_id>")
@admin_page
def file_download(file_id: str) -> Any:
    """A batch's input, output or error file, whichever key owns it."""
    row = db().get(StoredFile, file_id)
    if row is None:
        abort(404, "No such file.")
    return download(row)


def _with_progress(batch: dict[str, Any], key_name: str | None) -> dict[str, Any]:
    counts = batch["request_counts"]
    ended = counts["completed"] + counts["failed"]
    share = 100.0 * ended / counts["total"] if counts["total"] else 0.0
    return {**batch, "ended": ended, "progress": share, "key_name": key_name}
