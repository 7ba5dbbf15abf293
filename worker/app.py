"""Celery app factory, the per-process resources its tasks use, and the worker heartbeat."""

from __future__ import annotations

import logging
import os
import socket
import threading

import redis
from celery import Celery, signals

from llmproxy.config import ConfigError, Settings, load_settings
from llmproxy.jobs.queues import RUN_LINES_TASK, Queue, celery_config, line_chunks
from llmproxy.resources import Resources
from llmproxy.telemetry.heartbeats import beat

log = logging.getLogger(__name__)


_resources: Resources | None = None
_lock = threading.Lock()


def resources() -> Resources:
    """This process's resources, built on first use."""
    global _resources
    if _resources is None:
        with _lock:
            if _resources is None:
                _resources = Resources(load_settings())
    return _resources


def create_celery(settings: Settings | None = None) -> Celery:
    """Build the Celery app; tasks are registered by name in worker.tasks."""
    if settings is None:
        try:
            settings = load_settings()
        except ConfigError as exc:
            raise SystemExit(f"configuration error: {exc}") from None
    app = Celery("llmproxy", set_as_current=True)
    app.conf.update(celery_config(settings))
    # Every 5 s at most: a caller whose worker died waits one lease and at most this long more.
    sweep_every = max(1.0, min(5.0, settings.job_lease_seconds / 3))
    app.conf.beat_schedule = {
        "sweep-lost-jobs": {"task": "llmproxy.sweep_jobs", "schedule": sweep_every},
        "sweep-batches": {"task": "llmproxy.sweep_batches", "schedule": max(1.0, settings.job_lease_seconds / 3)},
        "purge-records": {"task": "llmproxy.purge_records", "schedule": 3600.0},
    }
    app.autodiscover_tasks(["worker"], related_name="tasks", force=True)
    return app


def send_batch_lines(app: Celery, job_ids: list[str], *, spread: bool = True) -> None:
    """Send batch lines to the batch queue, a few per run_lines task, over one producer connection."""
    with app.producer_or_acquire() as producer:
        for chunk in line_chunks(job_ids, spread=spread):
            app.send_task(RUN_LINES_TASK, args=[chunk], queue=Queue.BATCH, producer=producer)


# Per-task "received" and "succeeded" lines, and beat's "sending due task" every few seconds, drown what
# matters: they are DEBUG detail. Warnings and errors always show; the sweepers log at INFO only when they
# did something; beat's own start-up line stays.
TASK_LOGGERS = ("celery.app.trace", "celery.worker.strategy")


class _NoDueTaskLines(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Scheduler: Sending due task")


@signals.after_setup_logger.connect
def _quiet_routine_lines(loglevel: int | str | None = None, **_kwargs: object) -> None:
    level = logging.getLevelName(loglevel) if isinstance(loglevel, str) else loglevel
    if level is None or level > logging.DEBUG:
        for name in TASK_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
        logging.getLogger("celery.beat").addFilter(_NoDueTaskLines())


@signals.worker_process_init.connect
def _after_fork(**_kwargs) -> None:
    # Connections inherited from the parent must not be shared with it.
    if _resources is not None:
        _resources.after_fork()


def _heartbeat_loop(worker_name: str, queues: list[str], stop: threading.Event) -> None:
    while True:
        try:
            beat(resources().redis, worker_name, queues)
        except redis.RedisError:
            log.warning("heartbeat to Redis failed", exc_info=True)
        if stop.wait(5):
            return


_heartbeat_stop = threading.Event()


@signals.worker_ready.connect
def _start_heartbeat(sender=None, **_kwargs) -> None:
    queues = [q.name for q in sender.app.amqp.queues.consume_from.values()] if sender else list(Queue)
    name = getattr(sender, "hostname", None) or f"{socket.gethostname()}:{os.getpid()}"
    threading.Thread(target=_heartbeat_loop, args=(name, queues, _heartbeat_stop), daemon=True).start()


@signals.worker_shutdown.connect
def _stop_heartbeat(**_kwargs) -> None:
    _heartbeat_stop.set()


# A process manager SIGKILLs what still runs about 30 s after its SIGTERM. Celery's warm shutdown waits
# for running tasks without limit, and its cold one (a second Ctrl-C) cannot stop a thread-pool task at
# all, so a job on a slow provider would keep the process past that. Running jobs get this long to end;
# then the process exits as a crash would, which loses nothing: each job's lease lapses and the sweeper
# re-sends it to another worker (a batch line's message is redelivered too).
STOP_GRACE_SECONDS = 20.0
_exit_timer: list[threading.Timer] = []


def _exit_now(grace: float) -> None:
    # StreamHandler flushes each line; no logging.shutdown(), whose handler locks a stuck thread might hold.
    log.warning("tasks still running %.0f s after the shutdown signal; exiting, their jobs will be re-sent", grace)
    os._exit(1)


@signals.worker_shutting_down.connect
def _exit_after_grace(**_kwargs) -> None:
    # Sent from the signal handler of the first SIGTERM/SIGINT (later ones change nothing here).
    if not _exit_timer:
        timer = threading.Timer(STOP_GRACE_SECONDS, _exit_now, args=(STOP_GRACE_SECONDS,))
        timer.daemon = True  # a worker whose tasks ended exits at once, without waiting for this
        _exit_timer.append(timer)
        timer.start()
