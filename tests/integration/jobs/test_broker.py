"""The Redis transport both processes' Celery apps use (llmproxy.jobs.broker), against a real Redis (a scratch
database: no worker consumes there): one kept client per channel; no unacked copy for an interactive job's
message, which its lease covers; kombu's ack emulation for everything else."""

import dataclasses
import json
import uuid

import pytest
from celery import Celery

from llmproxy.jobs import broker
from llmproxy.jobs.queues import BROKER_TRANSPORT, RUN_JOB_TASK, RUN_LINES_TASK, Queue, celery_config


@pytest.fixture
def rds(redis_client):
    """The flushed scratch database (the app's own has workers consuming `interactive`)."""
    return redis_client


@pytest.fixture
def app(settings, rds):
    kwargs = rds.connection_pool.connection_kwargs
    url = f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs['db']}"
    celery = Celery("test-broker", set_as_current=False)
    celery.conf.update(celery_config(dataclasses.replace(settings, redis_url=url)))
    yield celery
    celery.close()


@pytest.fixture
def queue():
    return f"test-broker-{uuid.uuid4().hex[:8]}"


def receive(app, queue):
    """Receive one message as a worker does (not acknowledged yet); returns (channel, message)."""
    conn = app.connection_for_read()
    channel = conn.channel()
    message = channel.basic_get(queue, no_ack=False)
    assert message is not None
    return conn, channel, message


def test_publishes_go_through_one_kept_client(app, queue, rds):
    with app.connection_for_write() as conn:
        assert isinstance(conn.transport, broker.Transport)
        channel = conn.default_channel
        with app.producer_or_acquire(conn.Producer(channel)) as producer:
            app.send_task("llmproxy.test_task", args=["a"], queue=queue, producer=producer)
            kept = channel._kept_client
            assert kept is not None
            app.send_task("llmproxy.test_task", args=["b"], queue=queue, producer=producer)
            assert channel._kept_client is kept
    sent = [json.loads(raw) for raw in rds.lrange(queue, 0, -1)]
    assert sorted(m["headers"]["task"] for m in sent) == ["llmproxy.test_task"] * 2
    assert sorted(m["headers"]["argsrepr"] for m in sent) == ["['a']", "['b']"]


def test_a_batch_message_keeps_kombus_ack_emulation_through_the_kept_client(app, rds):
    app.send_task(RUN_LINES_TASK, args=[["job_a", "job_b"]], queue=Queue.BATCH)
    conn, channel, message = receive(app, Queue.BATCH)
    try:
        kept = channel._kept_client
        # Received, not acknowledged: kombu keeps a copy in its unacked hash so a dead worker's message returns.
        assert rds.hexists("unacked", message.delivery_tag)
        message.ack()
        assert not rds.hexists("unacked", message.delivery_tag)
        assert channel._kept_client is kept
        assert rds.llen(Queue.BATCH) == 0
    finally:
        channel.close()
        conn.close()


def test_an_interactive_job_message_is_acknowledged_late_without_a_copy_in_redis(app, rds):
    app.send_task(RUN_JOB_TASK, args=["job_x"], queue=Queue.INTERACTIVE)
    conn, channel, message = receive(app, Queue.INTERACTIVE)
    try:
        assert broker.is_leased(message)
        assert rds.hlen("unacked") == 0 and rds.zcard("unacked_index") == 0  # its job's lease covers it
        assert channel.qos.get(message.delivery_tag) is message  # still unacknowledged, in memory
        message.ack()
        assert rds.hlen("unacked") == 0 and rds.llen(Queue.INTERACTIVE) == 0
    finally:
        channel.close()
        conn.close()


def test_a_rejected_interactive_message_goes_back_to_the_head_of_its_queue(app, rds):
    app.send_task(RUN_JOB_TASK, args=["job_y"], queue=Queue.INTERACTIVE)
    conn, channel, message = receive(app, Queue.INTERACTIVE)
    try:
        message.reject(requeue=True)
        assert rds.llen(Queue.INTERACTIVE) == 1
        again = json.loads(rds.lindex(Queue.INTERACTIVE, 0))
        assert again["headers"]["argsrepr"] == "['job_y']" and again["headers"]["redelivered"] is True
    finally:
        channel.close()
        conn.close()


def test_other_interactive_tasks_keep_kombus_ack_emulation(app, rds):
    app.send_task("llmproxy.sweep_jobs", queue=Queue.INTERACTIVE)  # beat's sweeps use the default queue
    conn, channel, message = receive(app, Queue.INTERACTIVE)
    try:
        assert not broker.is_leased(message)
        assert rds.hexists("unacked", message.delivery_tag)
        message.ack()
    finally:
        channel.close()
        conn.close()


def test_a_new_pool_gets_a_new_client(app):
    with app.connection_for_write() as conn:
        channel = conn.default_channel
        first = channel._create_client()
        assert channel._create_client() is first
        channel._pool = None  # what kombu does when it drops its pools after a connection error
        assert channel._create_client() is not first


def test_only_the_plain_redis_scheme_gets_it(settings):
    assert celery_config(settings)["broker_transport"] == BROKER_TRANSPORT
    tls = dataclasses.replace(settings, redis_url="rediss://127.0.0.1:6380/0")
    assert "broker_transport" not in celery_config(tls)
