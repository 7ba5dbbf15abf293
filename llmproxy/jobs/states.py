"""The states of a job, as the job object's `status` shows them."""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    """Where a job is in its life: queued → in_progress → completed | failed | cancelled."""

    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINAL_JOB_STATUSES = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)
UNFINISHED_JOB_STATUSES = (JobStatus.QUEUED, JobStatus.IN_PROGRESS)
