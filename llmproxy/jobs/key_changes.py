"""What a key's revocation, or a narrowing of its allowed models, does to its work in flight.

* Running work (synchronous, streams, jobs, batch lines) reads the key's state mark
  (llmproxy.keys.key_state) at its next stop check, a fraction of a second later, stops, fails with the
  key's refusal and is billed for what it used (llmproxy.jobs.stopping).
* Queued stored work (async jobs, batch lines) that may no longer run fails at once, with no upstream
  call, as a cancelled batch's lines do: lines a worker has already claimed are left to their run (which
  stops on the mark). A line whose row a worker read just before is refused when it is claimed, since the
  worker reads the key again after every configuration change (llmproxy.jobs.execution).
* Queued synchronous jobs live only in Redis; the worker that claims one reads the key and fails it.
"""

from __future__ import annotations

from itertools import groupby

import redis
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from llmproxy.jobs import live
from llmproxy.jobs.events import Done, Event
from llmproxy.jobs.states import JobStatus
from llmproxy.keys import key_state
from llmproxy.keys.virtual_keys import key_info
from llmproxy.limits.queued import forget_queued
from llmproxy.storage.models import ApiKey, Job
from llmproxy.storage.timestamps import utcnow

UPDATE_CHUNK = 1000


def stop_disallowed_work(session: Session, client: redis.Redis, key: ApiKey) -> list[tuple[str, int, Event]]:
    """After a committed change of `key`: publish its state mark, then fail its queued stored jobs it may no
    longer run. Returns (job id, run, final event) of the failed ones: the caller commits, then wakes their
    long-polls with `events.publish_many`."""
    key_state.publish_state(client, key)
    if key.revoked_at is None and key.allowed_models is None:
        return []
    query = select(Job.model, Job.id).where(Job.api_key_id == key.id, Job.status == JobStatus.QUEUED)
    if key.revoked_at is None and key.allowed_models is not None:
        query = query.where(Job.model.not_in(key.allowed_models))
    rows = session.execute(query.order_by(Job.model)).all()
    started = live.started(client, [job_id for _model, job_id in rows]) if rows else set()
    info = key_info(key) if key.revoked_at is None else None
    failed: list[tuple[str, int, Event]] = []
    for model, group in groupby(rows, key=lambda row: row[0]):
        refusal = key_state.refusal(info, model)
        if refusal is None:
            continue
        done = Done(status=JobStatus.FAILED, error=refusal.body()["error"], error_status=refusal.status)
        ids = [job_id for _model, job_id in group if job_id not in started]
        for start in range(0, len(ids), UPDATE_CHUNK):
            result = session.execute(
                update(Job)
                .where(Job.id.in_(ids[start : start + UPDATE_CHUNK]), Job.status == JobStatus.QUEUED)
                .values(
                    status=JobStatus.FAILED,
                    error=done.error,
                    error_status=done.error_status,
                    completed_at=utcnow(),
                    lease_expires_at=None,
                )
                .returning(Job.id, Job.run_count)
                .execution_options(synchronize_session=False)
            )
            failed += [(job_id, run, done) for job_id, run in result]
    forget_queued(client, key.id, [job_id for job_id, _run, _done in failed])
    return failed
