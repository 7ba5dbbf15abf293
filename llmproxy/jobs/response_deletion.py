"""Deleting a stored response: its job row goes (its usage stays in the ledger, billed once)."""

from __future__ import annotations

import time

import redis
from sqlalchemy import delete
from sqlalchemy.orm import Session

from llmproxy.errors import ApiError
from llmproxy.jobs import live
from llmproxy.storage.models import Job

RECORD_WAIT_SECONDS = 5.0  # the writer stores an ended job within a second unless it is down


def delete_response(session: Session, client: redis.Redis, job_id: str, *, wait: float = RECORD_WAIT_SECONDS) -> None:
    """Delete an ended response's row, once the writer has stored it (an ended job lives in Redis until then)."""
    deadline = time.monotonic() + wait
    while live.read(client, job_id) is not None:  # ended, not yet stored: deleting now, the writer would store it
        if time.monotonic() >= deadline:
            raise ApiError(
                409, "The response is still being stored; try again in a moment.", type="conflict", code="busy"
            )
        time.sleep(0.05)
    session.execute(delete(Job).where(Job.id == job_id))
    session.commit()
