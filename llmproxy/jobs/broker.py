# mypy: allow-untyped-calls
# (kombu has no type hints; this module only overrides its methods)
"""kombu's Redis transport made cheaper per message, for both processes' Celery apps.

One Redis client per channel:

kombu builds a new redis-py client for every publish and for every acknowledgement
(`Channel._create_client`), and redis-py's constructor is not cheap: profiled under load it
was 11% of an interactive worker's CPU (two per message with late acks: the unacked index
entry on receipt, its removal on ack) and a share of every web publish. A redis-py client
is safe to share between threads over its connection pool, so one per channel serves
them all; a new pool (after a reconnect) gets a new client.

No broker-side bookkeeping for leased messages: kombu emulates late acks on Redis by copying
every received message into an `unacked` hash (a MULTI/EXEC on receipt, another on ack) so it
can put it back after `visibility_timeout` (minutes) if the worker dies. An interactive job's
`run_job` message needs none of it: the job holds a lease in Redis from the moment the web
created it (llmproxy.jobs.live), and the sweeper re-sends any job whose lease lapsed — sooner
than kombu would. Those messages are acknowledged late in memory only, as kombu does for any
transport without ack emulation; every other message (batch lines, batch tasks) keeps it.

This is the one module of the domain package that imports kombu: web and worker both need it and
neither may import the other. `celery_config` (llmproxy.jobs.queues) names it by path, so kombu
loads it only where a Celery app connects.
"""

from __future__ import annotations

from typing import Any

import redis
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual

from llmproxy.jobs.queues import RUN_JOB_TASK, Queue


def is_leased(message: Any) -> bool:
    """An interactive job's message: its job's lease, not the broker, brings it back if a worker dies."""
    return bool(
        message.delivery_info.get("routing_key") == Queue.INTERACTIVE
        and (message.headers or {}).get("task") == RUN_JOB_TASK
    )


class QoS(kombu_redis.QoS):
    """kombu's ack emulation on Redis, skipped for leased messages (see the module docstring)."""

    def append(self, message: Any, delivery_tag: str) -> None:
        if is_leased(message):
            virtual.QoS.append(self, message, delivery_tag)
        else:
            super().append(message, delivery_tag)

    def ack(self, delivery_tag: str) -> None:
        if self._leased(delivery_tag):
            virtual.QoS.ack(self, delivery_tag)
        else:
            super().ack(delivery_tag)

    def reject(self, delivery_tag: str, requeue: bool = False) -> None:
        if not self._leased(delivery_tag):
            super().reject(delivery_tag, requeue=requeue)
            return
        if requeue:  # back to the head of its queue, as kombu restores a rejected message
            message = self._delivered[delivery_tag]
            info = message.delivery_info
            with self.channel.conn_or_acquire() as client:
                self.channel._do_restore_message(message._raw, info["exchange"], info["routing_key"], client, True)
        virtual.QoS.ack(self, delivery_tag)

    def _leased(self, delivery_tag: str) -> bool:
        message = self._delivered.get(delivery_tag)
        return message is not None and is_leased(message)


class Channel(kombu_redis.Channel):
    """kombu's Redis channel, reusing its synchronous client instead of building one per command."""

    QoS = QoS
    _kept_client: redis.Redis | None = None

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:
            return super()._create_client(asynchronous=True)
        client = self._kept_client
        if client is None or client.connection_pool is not self.pool:
            client = self._kept_client = super()._create_client()
        return client


class Transport(kombu_redis.Transport):
    """kombu's Redis transport with the channel above."""

    Channel = Channel
