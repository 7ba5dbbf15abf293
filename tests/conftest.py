"""Shared fixtures: real Redis, a real database (TEST_DATABASE_URL or SQLite), the app, real workers, a stub upstream."""

from __future__ import annotations

import os
import tempfile

import pytest
import redis as redis_lib
from sqlalchemy import MetaData, create_engine, delete
from sqlalchemy.exc import IntegrityError

from llmproxy.catalog.defaults import seed_defaults
from llmproxy.catalog.provider_config import update_provider
from llmproxy.catalog.snapshots import bump_version
from llmproxy.config import load_settings, normalize_database_url
from llmproxy.devtools.embedded_redis import EmbeddedRedis
from llmproxy.devtools.stub_upstream import StubUpstream
from llmproxy.devtools.waiting import wait_for
from llmproxy.jobs.writer import RecordWriter
from llmproxy.storage import migrate
from llmproxy.storage.engine import make_engine, make_session_factory, session_scope
from llmproxy.storage.models import (
    ApiKey,
    Batch,
    Deployment,
    FileChunk,
    Job,
    KeyCredential,
    ModelConfig,
    Provider,
    StoredFile,
    UsageEntry,
)
from llmproxy.storage.rollups import ErrorRollup, UsageRollup
from tests.support.processes import ADMIN_KEY, WorkerProcess, WriterProcess, base_env

SCRATCH_DB = 15  # limits/unit tests flush this Redis database; the app and workers use the URL's


def _with_db_index(url: str, index: int) -> str:
    base, _, _tail = url.rpartition("/")
    return f"{base}/{index}" if base.startswith("redis://") and base.count("/") >= 2 else url


@pytest.fixture(scope="session")
def redis_url():
    """URL of a real Redis: $REDIS_URL if set, else an embedded server for this session."""
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    server = EmbeddedRedis()
    try:
        yield server.url
    finally:
        server.close()


@pytest.fixture
def redis_client(redis_url):
    """A client on a flushed scratch database of the same server (never the app's own)."""
    client = redis_lib.Redis.from_url(_with_db_index(redis_url, SCRATCH_DB))
    client.flushdb()
    yield client
    client.close()


@pytest.fixture(scope="session")
def database_url():
    """A migrated test database: $TEST_DATABASE_URL (e.g. PostgreSQL) or a fresh SQLite file."""
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        url = normalize_database_url(url)
        _drop_all_tables(url)
    else:
        url = f"sqlite:///{tempfile.mkdtemp(prefix='llmproxy-test-')}/test.db"
    migrate.upgrade(url)
    return url


def _drop_all_tables(url: str) -> None:
    # Whatever an earlier run left (its last test may leave ledger rows whose jobs retention deleted,
    # which a downgrade refuses on purpose): drop every table, then migrate from nothing.
    engine = create_engine(url)
    existing = MetaData()
    existing.reflect(engine)
    existing.drop_all(engine)
    engine.dispose()


@pytest.fixture(scope="session")
def env(database_url, redis_url):
    """The environment every process of the test session runs with."""
    return {**base_env(), "DATABASE_URL": database_url, "REDIS_URL": redis_url}


@pytest.fixture(scope="session")
def settings(env):
    """Settings of the test session."""
    return load_settings(env)


@pytest.fixture(scope="session")
def session_factory(settings):
    """Session factory on the test database."""
    engine = make_engine(settings.database_url)
    yield make_session_factory(engine)
    engine.dispose()


def announce(redis_url: str) -> None:
    """Configuration changed behind the admin API's back: tell every process (as the API would)."""
    client = redis_lib.Redis.from_url(redis_url)
    bump_version(client)
    client.close()


def _clean(session_factory, redis_url) -> None:
    # The session's worker may still be finishing a job an earlier test left behind and insert its ledger
    # row between two of these deletes; the whole clean-up is one transaction, so try it again until a pass
    # finds nothing new referencing what it deletes.
    conflicts: list[IntegrityError] = []
    client = redis_lib.Redis.from_url(redis_url)
    # What earlier tests' jobs left for the writer is stored first, while their keys still exist.
    RecordWriter(session_factory, client, consumer="tests", block_ms=10).drain()

    def one_pass() -> bool:
        try:
            with session_scope(session_factory) as session:
                for model in (
                    UsageRollup,
                    ErrorRollup,
                    UsageEntry,
                    Job,
                    Batch,
                    FileChunk,
                    StoredFile,
                    KeyCredential,
                    ApiKey,
                    Deployment,
                    ModelConfig,
                    Provider,
                ):
                    session.execute(delete(model))
        except IntegrityError as exc:
            conflicts.append(exc)
            return False
        return True

    try:
        wait_for(one_pass, timeout=30, interval=0.01, message="a clean-up pass that nothing new references")
    except TimeoutError as timeout:
        raise timeout from conflicts[-1]
    # Jobs, and deployments' health, windows and weighted turns (each test starts with every deployment healthy,
    # its window empty, turn 1): a fresh database gives the same deployment ids again.
    keys = [
        key
        for pattern in ("llmproxy:job:*", "llmproxy:deployment:*", "llmproxy:limits:{deployment:*", "llmproxy:model:*")
        for key in client.scan_iter(pattern, count=1000)
    ]
    if keys:
        client.delete(*keys)
    bump_version(client)  # every process drops its configuration snapshots
    client.close()


@pytest.fixture
def db(session_factory, redis_url):
    """A clean database with the default providers and models; yields the session factory."""
    _clean(session_factory, redis_url)
    with session_scope(session_factory) as session:
        seed_defaults(session)
    announce(redis_url)
    return session_factory


@pytest.fixture
def app(settings, db):
    """The Flask app on the clean test database."""
    from web import create_app

    return create_app(settings)


@pytest.fixture
def client(app):
    """Flask test client."""
    return app.test_client()


@pytest.fixture
def admin_headers():
    """Authorization for admin routes."""
    return {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture
def make_key(client, admin_headers):
    """Create a virtual key through the admin API; returns (secret, key json)."""

    def make(**fields):
        response = client.post("/admin/keys", json=fields, headers=admin_headers)
        assert response.status_code == 201, response.json
        return response.json["key"], response.json

    return make


@pytest.fixture(scope="session")
def stub():
    """A real HTTP upstream on loopback that can be told to fail, hang or break a stream."""
    server = StubUpstream()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def upstream(stub, db, settings):
    """The stub, reset, with the default providers pointed at it and given default keys."""
    stub.reset()
    with session_scope(db) as session:
        for name, url in (("openai", stub.url), ("mistral", stub.mistral_url), ("anthropic", stub.anthropic_url)):
            update_provider(
                session,
                name,
                {"api_base": url, "api_key": f"sk-{name}-default"},
                encryption_key=settings.encryption_key,
            )
    announce(settings.redis_url)
    return stub


@pytest.fixture(scope="session")
def worker(env):
    """A real Celery worker process consuming both queues, and a writer storing what it ends, for the session."""
    writer = WriterProcess(env)
    writer.start()
    proc = WorkerProcess(env)
    proc.start()
    yield proc
    proc.stop()
    writer.stop()


@pytest.fixture
def rds(redis_url):
    """A client on the Redis database the app and its workers use (the job scripts use fixed key names)."""
    client = redis_lib.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def records(db, redis_url):
    """An in-process writer: `records.drain()` stores every ended job's record now (as the writer process would)."""
    client = redis_lib.Redis.from_url(redis_url)
    yield RecordWriter(db, client, consumer="tests", block_ms=10)
    client.close()


@pytest.fixture
def live(app):
    """The app over real HTTP on a loopback port; yields its base URL."""
    from tests.support.processes import LiveServer

    with LiveServer(app) as server:
        yield server.url
