"""The floor's worker side: post the body to the upstream, push the answer (or each chunk) to Redis.

Run as the bench runs the gateway's workers: `celery -A bench.floor.worker worker -Q floor -P threads -c N
--without-gossip --without-mingle --without-heartbeat --loglevel warning`.
"""

from __future__ import annotations

import json

import redis
import requests
from celery import signals
from requests.adapters import HTTPAdapter

from bench.floor.common import (
    END,
    REDIS_ENV,
    RESULT_TTL_S,
    TASK,
    UPSTREAM_ENV,
    WORKERS_KEY,
    env,
    make_celery,
    result_key,
)

TIMEOUTS = (5.0, 60.0)  # connect, read: as the bench's load generator
UPSTREAM_KEY = "sk-bench"  # what every target sends the stub

_redis_url = env(REDIS_ENV)
app = make_celery(_redis_url)
_redis = redis.Redis.from_url(_redis_url)
_upstream = env(UPSTREAM_ENV).rstrip("/") + "/chat/completions"


def new_session() -> requests.Session:
    """The process-wide upstream session: pooled keep-alive connections, no retries, no environment lookups."""
    session = requests.Session()
    # trust_env would read the proxy variables and ~/.netrc on every call; the upstream is on loopback.
    session.trust_env = False
    adapter = HTTPAdapter(pool_maxsize=64, max_retries=0)  # 64 ≥ the threads of any worker process the bench runs
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["Authorization"] = f"Bearer {UPSTREAM_KEY}"
    return session


_session = new_session()


def _push(key: str, *items: bytes) -> None:
    # One round trip: the items and the expiry that cleans up after a web that stopped waiting.
    pipe = _redis.pipeline(transaction=False)
    pipe.rpush(key, *items)
    pipe.expire(key, RESULT_TTL_S)
    pipe.execute()


def _error(exc: Exception) -> bytes:
    return json.dumps({"error": {"message": f"upstream call failed: {exc}", "type": "upstream_error"}}).encode()


@app.task(name=TASK)
def run(job_id: str, body: dict) -> None:
    """Post `body` to the upstream; push the status and answer, or each streamed payload and then END."""
    key = result_key(job_id)
    if body.get("stream"):
        _stream(key, body)
        return
    try:
        resp = _session.post(_upstream, json=body, timeout=TIMEOUTS)
    except requests.RequestException as exc:
        _push(key, b"502" + _error(exc))
        return
    _push(key, b"%03d" % resp.status_code + resp.content)


def _stream(key: str, body: dict) -> None:
    try:
        with _session.post(_upstream, json=body, timeout=TIMEOUTS, stream=True) as resp:
            if resp.status_code != 200:
                _push(key, resp.content.strip() or b'{"error": {"message": "upstream failed"}}', END)
                return
            pending = b""
            # chunk_size=None: each block as it arrives (the stub sends one HTTP chunk per event).
            for block in resp.iter_content(chunk_size=None):
                lines = (pending + block).split(b"\n")
                pending = lines.pop()
                for line in lines:
                    if line.startswith(b"data:"):
                        payload = line[5:].strip()
                        if payload and payload != b"[DONE]":  # the web writes its own [DONE] after END
                            _push(key, payload)
    except requests.RequestException as exc:
        _push(key, _error(exc), END)
        return
    _push(key, END)


@signals.worker_ready.connect
def _announce(sender=None, **_kwargs) -> None:
    # The bench waits for every node here before its first request, as it waits for the gateway's heartbeats.
    _redis.hset(WORKERS_KEY, sender.hostname, 1)
