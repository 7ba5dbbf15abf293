"""The periodic tasks beat sends, called the way a worker calls them (a wrong signature fails here,
not only when a worker dies and the sweeper is needed)."""

import pytest

import worker.app as worker_app
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
    assert tasks.purge_records() == {"batches": 0, "jobs": 0, "files": 0}
