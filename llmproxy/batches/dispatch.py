"""Getting batch lines to the workers a window at a time, and finding the ones whose message was lost.

Every line is a job row before any message is sent (durability first). Lines are sent a window at a
time, not all at once: a paced line waiting for its key's capacity runs again every ≤ 30 s, so 50,000
lines sent at once for a key of 100 RPM would keep every worker busy deferring them. The window is
the key's RPM, or the summed RPM of its model's deployments if smaller (MIN_WINDOW..MAX_WINDOW;
MAX_WINDOW without an RPM limit). A worker task fills it when
the batch is created (`top_up`), the records writer sends one line for each line it stored as ended
(`send_next`), and the sweeper tops every running batch up, which also covers a dispatch task or a
writer that died.

Sending a line first stamps `jobs.enqueued_at` (a conditional UPDATE: the stamp is the claim, two
processes never send the same line). A line whose message was lost (Redis lost its data, or the
process died between stamp and send) is queued, was stamped long ago, the batch queue is empty (so
its message is not waiting there), no worker has claimed it (llmproxy.jobs.live) and no task has
touched it lately: paced lines run at least every 30 s and each run touches a marker in Redis, so a
line untouched for `stale_seconds` (BATCH_LOST_AFTER_SECONDS, a minute by default) has no message
left and is sent again. A duplicate message costs nothing: claiming a job is
idempotent and the ledger's unique job_id bills it once.

After Redis lost its data, the queue-empty rule alone would hold lost lines back for as long as new work
keeps the queue busy. So Redis keeps the time its data began (DATA_SINCE_KEY, written by the first sweep
that finds it missing): a line sent before then cannot have a message in this Redis, and is sent again
without waiting for the queue to empty (a key evicted or deleted by hand only costs duplicate messages).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import redis
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from llmproxy.batches.states import RUNNING_BATCH_STATUSES, BatchStatus
from llmproxy.jobs import live
from llmproxy.jobs.queues import Queue, queue_depth
from llmproxy.jobs.states import UNFINISHED_JOB_STATUSES, JobStatus
from llmproxy.storage.engine import session_scope
from llmproxy.storage.models import ApiKey, Batch, Deployment, Job, ModelConfig, Provider
from llmproxy.storage.timestamps import utcnow

TOUCHED_KEY = "llmproxy:batch:touched"  # sorted set: job id -> unix time a task last ran for it
DATA_SINCE_KEY = "llmproxy:redis:data-since"  # unix time this Redis's data began: it is lost with the data
IDS_PER_STATEMENT = 500
MIN_WINDOW, MAX_WINDOW = 10, 1000

Send = Callable[[list[str]], None]


def window_of(key: ApiKey | None, model_rpm: int | None = None) -> int:
    """How many lines of a batch of this key, for a model whose deployments take `model_rpm`, may be unfinished."""
    limits = [limit for limit in (key.rpm_limit if key is not None else None, model_rpm) if limit is not None]
    return max(MIN_WINDOW, min([MAX_WINDOW, *limits]))


def model_rpm(session: Session, batch_id: str) -> int | None:
    """Calls a minute the deployments of the batch's next line's model take together; None if one has no limit.

    A batch's lines nearly always ask one model: the next unsent line's stands for the rest (one indexed row)."""
    model = session.scalars(
        select(Job.model).where(Job.batch_id == batch_id, Job.enqueued_at.is_(None)).limit(1)
    ).first()
    limits = session.scalars(
        select(Deployment.rpm_limit)
        .join(ModelConfig, ModelConfig.id == Deployment.model_id)
        .join(Provider, Provider.id == Deployment.provider_id)
        .where(ModelConfig.name == model, Deployment.enabled, Provider.enabled)
    ).all()
    return None if not limits or None in limits else sum(limit for limit in limits if limit is not None)


def claim_unsent(session: Session, batch_id: str, n: int) -> list[str]:
    """Stamp up to n queued, never-sent lines of the batch as sent now; return their ids."""
    claimed: list[str] = []
    for _ in range(2):  # a second look finds what a concurrent claimer left (SQLite has no SKIP LOCKED)
        want = n - len(claimed)
        if want <= 0:
            break
        ids = list(
            session.scalars(
                select(Job.id)
                .where(Job.batch_id == batch_id, Job.status == JobStatus.QUEUED, Job.enqueued_at.is_(None))
                .limit(want)
                .with_for_update(skip_locked=True)
            )
        )
        if not ids:
            break
        for start in range(0, len(ids), IDS_PER_STATEMENT):
            claimed += session.scalars(
                update(Job)
                .where(Job.id.in_(ids[start : start + IDS_PER_STATEMENT]), Job.enqueued_at.is_(None))
                .values(enqueued_at=utcnow())
                .returning(Job.id)
                .execution_options(synchronize_session=False)
            ).all()
    return claimed


def _send_claimed(session_factory: sessionmaker[Session], ids: list[str], send: Send) -> int:
    try:
        for start in range(0, len(ids), IDS_PER_STATEMENT):
            send(ids[start : start + IDS_PER_STATEMENT])
    except BaseException:
        # Unsent lines go back to waiting for the window (a partly sent chunk only duplicates messages).
        with session_scope(session_factory) as session:
            session.execute(
                update(Job)
                .where(Job.id.in_(ids), Job.status == JobStatus.QUEUED)
                .values(enqueued_at=None)
                .execution_options(synchronize_session=False)
            )
        raise
    return len(ids)


def top_up(session_factory: sessionmaker[Session], batch_id: str, *, send: Send) -> int:
    """Send lines of a running batch until its window is full; return how many were sent."""
    with session_scope(session_factory) as session:
        batch = session.get(Batch, batch_id)
        if batch is None or batch.status not in RUNNING_BATCH_STATUSES:
            return 0
        in_flight = session.scalars(
            select(func.count())
            .select_from(Job)
            .where(Job.batch_id == batch_id, Job.status.in_(UNFINISHED_JOB_STATUSES), Job.enqueued_at.is_not(None))
        ).one()
        window = window_of(session.get(ApiKey, batch.api_key_id), model_rpm(session, batch_id))
        ids = claim_unsent(session, batch_id, window - in_flight)
    return _send_claimed(session_factory, ids, send) if ids else 0


def send_next(session_factory: sessionmaker[Session], batch_id: str, *, send: Send, ended: int = 1) -> int:
    """Lines of the batch ended: send as many next ones in their place (0 when every line was sent)."""
    with session_scope(session_factory) as session:
        ids = claim_unsent(session, batch_id, ended)
    return _send_claimed(session_factory, ids, send) if ids else 0


def top_up_running(session_factory: sessionmaker[Session], *, send: Send, limit: int = 100) -> int:
    """The sweeper's pass: top up every running batch that still has lines to send; return how many were sent."""
    with session_scope(session_factory) as session:
        waiting = list(
            session.scalars(
                select(Batch.id)
                .where(
                    Batch.status == BatchStatus.IN_PROGRESS,
                    select(Job.id)
                    .where(Job.batch_id == Batch.id, Job.status == JobStatus.QUEUED, Job.enqueued_at.is_(None))
                    .exists(),
                )
                .limit(limit)
            )
        )
    return sum(top_up(session_factory, batch_id, send=send) for batch_id in waiting)


def touch(client: redis.Redis, job_ids: list[str]) -> None:
    """Record that a task runs for these jobs now (their message is alive)."""
    now = time.time()
    client.zadd(TOUCHED_KEY, dict.fromkeys(job_ids, now))


def redis_data_since(client: redis.Redis) -> datetime:
    """When this Redis's data began: the time recorded by the first look after it was empty (now, if this is it)."""
    client.set(DATA_SINCE_KEY, repr(time.time()), nx=True)
    return datetime.fromtimestamp(float(client.get(DATA_SINCE_KEY) or time.time()), UTC)


def lost_lines(
    session_factory: sessionmaker[Session], client: redis.Redis, *, stale_seconds: float, limit: int = 1000
) -> list[str]:
    """Queued batch-queue jobs with no live message (see the module docstring)."""
    data_since = redis_data_since(client)
    cutoff = max(utcnow() - timedelta(seconds=stale_seconds), data_since)
    # Single jobs of the batch queue are sent by the web itself and never stamped: their creation is their send.
    sent_at = func.coalesce(Job.enqueued_at, Job.created_at)
    with session_scope(session_factory) as session:
        rows = session.execute(
            select(Job.id, sent_at)
            .where(
                Job.status == JobStatus.QUEUED,
                Job.queue == Queue.BATCH,
                or_(Job.enqueued_at < cutoff, and_(Job.enqueued_at.is_(None), Job.batch_id.is_(None))),
                sent_at < cutoff,
            )
            .limit(limit)
        ).all()
        if not rows:
            return []
        candidates = [job_id for job_id, _ in rows]
        if queue_depth(client, Queue.BATCH) == 0:
            looked = candidates
        else:  # their messages may still wait there, unless they were sent before Redis's data began
            looked = [job_id for job_id, sent in rows if _aware(sent) < data_since]
        lost: list[str] = []
        if looked:
            recent = time.time() - stale_seconds
            scores = client.zmscore(TOUCHED_KEY, looked)
            lost = [job_id for job_id, score in zip(looked, scores) if score is None or score < recent]
            # A line a worker claimed runs (or ended) in Redis while its row says queued: not lost. A dead
            # worker's line is the lease sweep's (llmproxy.jobs.live.due).
            started = live.started(client, lost) if lost else set()
            lost = [job_id for job_id in lost if job_id not in started]
        # Restamp every candidate: lost ones are sent now, the others need no look for another period.
        for start in range(0, len(candidates), IDS_PER_STATEMENT):
            session.execute(
                update(Job)
                .where(Job.id.in_(candidates[start : start + IDS_PER_STATEMENT]))
                .values(enqueued_at=utcnow())
                .execution_options(synchronize_session=False)
            )
    client.zremrangebyscore(TOUCHED_KEY, 0, time.time() - max(3600.0, stale_seconds * 4))
    return lost


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive UTC datetimes.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def requeue_lost(
    session_factory: sessionmaker[Session], client: redis.Redis, *, stale_seconds: float, send: Send
) -> int:
    """Send a new task for every lost line; return how many."""
    lost = lost_lines(session_factory, client, stale_seconds=stale_seconds)
    for start in range(0, len(lost), IDS_PER_STATEMENT):
        send(lost[start : start + IDS_PER_STATEMENT])
    return len(lost)
