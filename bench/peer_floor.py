"""`--peer floor`: the floor app (bench/floor/) in front of the same stub, with the gateway's processes and threads.

The web runs under gunicorn `gthread` with the gateway's `web_workers` × `web_threads`, the worker as the bench
runs the gateway's (`-P threads`, `worker_procs` processes × `worker_threads`), on the bench's Redis but a
database of its own (index 8, flushed first). Nothing else: no database, no keys, no limits.
"""

from __future__ import annotations

import importlib.metadata
import socket
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
import requests

from bench.answers import check_answers
from bench.floor.common import QUEUE, REDIS_ENV, UPSTREAM_ENV, WORKERS_KEY
from bench.processes import PYTHON, BenchError, Child, ProcessSet, wait_for
from bench.proxy import PROTECTED_REDIS_DBS, QUIET, ProxyConfig, prepare_redis
from llmproxy.devtools.net import free_port

REDIS_DB = 8
READY_TIMEOUT_S = 60.0
KEY = "sk-bench-floor"  # sent like any key, ignored by the floor
KEEPALIVE_S = 30  # as web/gunicorn_conf.py: the load generator's sessions keep their connections
STACK = ("flask", "gunicorn", "celery", "kombu", "redis", "requests")


def stack_versions() -> dict[str, str]:
    """The versions of the floor's stack, for the report (the gateway's too: both run from the project's venv)."""
    return {name: importlib.metadata.version(name) for name in STACK}


def redis_url(bench_redis_url: str) -> str:
    """The bench's Redis URL with database index 8: the floor's own database."""
    parts = urlsplit(bench_redis_url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "db"]
    if parts.scheme == "unix":  # the path is the socket's: the database goes in the query
        url = urlunsplit(parts._replace(query=urlencode([*query, ("db", str(REDIS_DB))])))
        return url.replace("unix:/", "unix:///", 1) if not parts.netloc else url  # urlunsplit drops the empty host
    return urlunsplit(parts._replace(path=f"/{REDIS_DB}", query=urlencode(query)))


def _db_index(url: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        return int(client.connection_pool.connection_kwargs.get("db", 0))
    finally:
        client.close()


def prepare(bench_redis_url: str) -> str:
    """Check and flush the floor's Redis database (never a protected one, nor the gateway's); return its URL."""
    url = redis_url(bench_redis_url)
    index = _db_index(url)
    if index in PROTECTED_REDIS_DBS:
        raise BenchError(f"refusing to flush Redis database {index} for the floor")
    if index == _db_index(bench_redis_url):
        raise BenchError(f"the floor uses Redis database {REDIS_DB}: give the gateway another with --redis-url")
    prepare_redis(url)
    return url


def web_command(port: int, config: ProxyConfig) -> list[str]:
    """gunicorn `gthread` with the gateway's process and thread counts, access log as the gateway's (off by default)."""
    return [
        PYTHON,
        "-m",
        "gunicorn",
        "--worker-class",
        "gthread",
        "--workers",
        str(config.web_workers),
        "--threads",
        str(config.web_threads),
        "--keep-alive",
        str(KEEPALIVE_S),
        "--bind",
        f"127.0.0.1:{port}",
        *(["--access-logfile", "-"] if config.access_log else []),
        "bench.floor.app:create_app()",
    ]


def worker_command(config: ProxyConfig, node: str) -> list[str]:
    """A Celery worker on `floor`, as the bench runs the gateway's (threads pool, no gossip, mingle, heartbeat)."""
    options = ["-Q", QUEUE, "-P", "threads", "-c", str(config.worker_threads), "-n", node, *QUIET]
    return [PYTHON, "-m", "celery", "-A", "bench.floor.worker", "worker", *options, "--loglevel", "warning"]


class Floor:
    """The running floor: its OpenAI-style base URL, the (ignored) key, and its processes."""

    def __init__(self, web: Child, workers: list[Child], url: str, config: ProxyConfig) -> None:
        self.web = web
        self.workers = workers
        self.url = url  # …/v1, like the stub's
        self.key = KEY
        self.command = (
            f"gunicorn -k gthread -w {config.web_workers} --threads {config.web_threads} bench.floor.app "
            f"+ {len(workers)} × celery -A bench.floor.worker worker -Q {QUEUE} -P threads "
            f"-c {config.worker_threads}; Redis db {REDIS_DB}"
        )

    def children(self) -> list[Child]:
        """Its processes (to watch for crashes)."""
        return [*self.workers, self.web]

    def stop(self) -> None:
        """Stop the web, then the workers (before the gateway starts, so the two never share the cores)."""
        self.web.stop()
        for worker in self.workers:
            worker.stop()


def start_floor(procs: ProcessSet, *, stub_url: str, redis_url: str, config: ProxyConfig) -> Floor:
    """Start the floor's workers and web against the stub (Redis prepared by prepare()); wait until it serves."""
    env = {REDIS_ENV: redis_url, UPSTREAM_ENV: stub_url}
    nodes = [f"floor{i + 1}@localhost" for i in range(config.worker_procs)]
    workers = [procs.start(f"floor-worker{i + 1}", worker_command(config, node), env) for i, node in enumerate(nodes)]
    port = free_port()
    web = procs.start("floor-web", web_command(port, config), env)
    floor = Floor(web, workers, f"http://127.0.0.1:{port}/v1", config)
    client = redis.Redis.from_url(redis_url)
    try:
        wait_for(
            lambda: all(client.hexists(WORKERS_KEY, node) for node in nodes),
            timeout=READY_TIMEOUT_S,
            message="the floor's Celery workers to consume `floor`",
            watch=floor.children(),
        )
    finally:
        client.close()
    wait_for(lambda: _listening(port), timeout=READY_TIMEOUT_S, message="the floor's gunicorn to listen", watch=[web])
    _smoke_test(floor)
    return floor


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _smoke_test(floor: Floor) -> None:
    """One sync and one streamed request must come back from the stub through the floor, well-formed."""
    try:
        check_answers(floor.url, floor.key)
    except (BenchError, requests.RequestException) as exc:
        tails = "".join(f"\n--- {c.name} ({c.log_path}):\n{c.tail()}" for c in (floor.web, floor.workers[0]))
        raise BenchError(f"the floor's first requests failed: {exc}{tails}") from None
