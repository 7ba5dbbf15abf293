"""The periodic tasks beat sends, called the way a worker calls them (a wrong signature fails here,
not only when a worker dies and the sweeper is needed)."""

import time

import pytest
from sqlalchemy.exc import OperationalError

import worker.app as worker_app
from llmproxy.ids import new_job_id
from llmproxy.jobs import live
from llmproxy.jobs.live_job import LiveJob
from worker import tasks


@pytest.fixture
def worker_resources(env, db, monkeypatch):
    """This test process as a worker would be: settings from the environment, fresh resources."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(worker_app, "_resources", None)
    res = worker_app.resources()
    yield res
    res.engine.dispose()
    res.redis.close()


def test_beat_tasks_run(worker_resources):
    assert tasks.sweep_jobs() == 0  # nothing lost in a clean database
    assert tasks.sweep_batches() == 0
    assert tasks.purge_records() == {"batches": 0, "jobs": 0, "files": 0, "usage_minutes": 0, "error_minutes": 0}


def test_lapsed_jobs_are_re_sent_while_the_database_is_down(worker_resources, monkeypatch):
    """A lapsed job lives in Redis only: the sweep re-sends it even when its read of the database fails after."""
    client = worker_resources.redis
    request = {"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "swept"}]}
    job = LiveJob(
        new_job_id(), "key_sweep", "gpt-3.5-turbo", "interactive", request, created_at_ms=int(time.time() * 1000)
    )
    live.create(client, job, lease_seconds=0)  # its lease has lapsed: its worker died
    sent: list[tuple[str, str]] = []
    monkeypatch.setattr(tasks.run_job, "apply_async", lambda args, queue: sent.append((args[0], queue)))

    def database_down(_session):
        raise OperationalError("SELECT", {}, ConnectionRefusedError("the database is down"))

    monkeypatch.setattr(tasks, "lost_jobs", database_down)
    try:
        with pytest.raises(OperationalError):
            tasks.sweep_jobs()
        # `due` gave it its next lease: had it not been sent now, it would wait for that one too.
        assert (job.id, "interactive") in sent
    finally:
        live.discard(client, job.id)
