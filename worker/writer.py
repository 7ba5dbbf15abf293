"""`python -m worker.writer`: the process that stores ended jobs and bills them, many per transaction.

Run one or more (the Procfile's `writer` role); they share the work through a Redis consumer
group. SIGTERM or SIGINT stops it after the round in progress has committed and acknowledged.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable

import redis
from celery import Celery
from sqlalchemy.exc import SQLAlchemyError

from llmproxy.batches.results import lines_ended
from llmproxy.config import ConfigError, load_settings
from llmproxy.jobs.queues import FINALIZE_BATCH_TASK, Queue
from llmproxy.jobs.records import Record
from llmproxy.jobs.writer import BATCH, ROLE, RecordWriter
from llmproxy.resources import Resources
from llmproxy.telemetry.heartbeats import beat
from worker.app import create_celery, send_batch_lines

log = logging.getLogger("llmproxy.writer")
HEARTBEAT_SECONDS = 5.0
RETRY_SECONDS = 1.0
# After a round smaller than a full batch, let records gather this long before the next one: a
# transaction per handful of records cost as much as one per thousand (measured with bench/: writer
# CPU per request at c=20 fell from 1.05 ms to 0.25, PostgreSQL's from 0.44 to 0.11), and the caller
# already has its answer.
LINGER_SECONDS = 0.2


def run(resources: Resources, stop: threading.Event, celery: Celery) -> None:
    """Write records until `stop` is set; a database or Redis outage is waited out, never fatal."""
    name = f"{socket.gethostname()}:{os.getpid()}"
    writer: RecordWriter | None = None
    next_beat = 0.0
    while not stop.is_set():
        try:
            if time.monotonic() >= next_beat:
                beat(resources.redis, name, [ROLE])
                next_beat = time.monotonic() + HEARTBEAT_SECONDS
            if writer is None:
                writer = RecordWriter(
                    resources.session_factory,
                    resources.redis,
                    consumer=name,
                    counters=resources.counters,
                    on_stored=_batch_lines_hook(resources, celery),
                )
            stored = writer.step()
            if 0 < stored.read < BATCH:
                stop.wait(LINGER_SECONDS)
        except (redis.RedisError, SQLAlchemyError, OSError):
            log.warning("could not store records; trying again in %.0f s", RETRY_SECONDS, exc_info=True)
            stop.wait(RETRY_SECONDS)


def _batch_lines_hook(resources: Resources, celery: Celery) -> Callable[[list[Record]], None]:
    """After a round is stored: each batch that had lines end sends as many next ones, or is finalized."""
    session_factory = resources.session_factory

    def send(job_ids: list[str]) -> None:
        # These replace lines that ended: the batch's window is full of work, so no need to spread them out.
        send_batch_lines(celery, job_ids, spread=False)

    def finalize(batch_id: str) -> None:
        celery.send_task(FINALIZE_BATCH_TASK, args=[batch_id], queue=Queue.BATCH)

    def on_stored(stored: list[Record]) -> None:
        ended = Counter(str(r.row["batch_id"]) for r in stored if r.row.get("batch_id"))
        if not ended:
            return
        try:
            lines_ended(session_factory, ended, send=send, finalize=finalize)
        except Exception:
            # The records are stored: the batch sweeper tops these batches up (or finalizes them) instead.
            log.warning("could not send the next lines of %d batches", len(ended), exc_info=True)

    return on_stored


def main() -> None:
    """Start a writer with the environment's settings."""
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO"), format="[%(asctime)s: %(levelname)s/writer] %(message)s"
    )
    try:
        settings = load_settings()
    except ConfigError as exc:
        raise SystemExit(f"configuration error: {exc}") from None
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    resources = Resources(settings)
    celery = create_celery(settings)  # to send the next lines of batches whose lines it stored
    log.info("writer started")
    try:
        run(resources, stop, celery)
    finally:
        resources.close()
        log.info("writer stopped")


if __name__ == "__main__":
    main()
