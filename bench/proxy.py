"""The proxy as production runs it: PostgreSQL, Redis, gunicorn web, Celery workers on `interactive`
and, for the batch scenario, separate Celery workers on `batch` (the Procfile's `worker` and `batch`).

Everything goes through the project's own entry points: `python -m llmproxy setup` migrates and
seeds a dedicated bench database, `python -m llmproxy providers edit` points the default
providers at the stub, `python -m llmproxy keys create` makes the virtual keys.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass

import psycopg
import redis
import requests
from psycopg import sql
from sqlalchemy.engine import make_url

from bench.loadgen import MODEL
from bench.processes import PYTHON, BenchError, Child, ProcessSet, run_command, wait_for
from llmproxy.devtools.net import free_port

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/llmproxy_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/9"
# Databases and Redis indexes the bench must never wipe: the test suite's and the usual defaults.
PROTECTED_DATABASES = {"test", "postgres", "template0", "template1"}
PROTECTED_REDIS_DBS = {0, 14, 15}
# The Procfile's queues, and the Redis hash each worker's heartbeat goes to (llmproxy.queueing).
INTERACTIVE, BATCH = "interactive", "batch"


# As the Procfile: no worker-to-worker events over the broker (the proxy uses its own heartbeats).
QUIET = ("--without-gossip", "--without-mingle", "--without-heartbeat")


def celery_worker(queue: str, *, threads: int, node: str, loglevel: str) -> list[str]:
    """The command line of a Celery worker on one queue, as the Procfile runs it (threads pool)."""
    options = ["-Q", queue, "-P", "threads", "-c", str(threads), "-n", node, "--loglevel", loglevel, *QUIET]
    return [PYTHON, "-m", "celery", "-A", "worker.main", "worker", *options]


def heartbeat_key(queue: str) -> str:
    return f"llmproxy:consumers:{queue}"


@dataclass(frozen=True)
class ProxyConfig:
    """How many processes and threads to run, and where its state lives."""

    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str = DEFAULT_REDIS_URL
    fresh_database: bool = True  # drop and recreate the database first (only ever the bench's own)
    web_workers: int = 2
    web_threads: int = 32
    worker_procs: int = 2
    worker_threads: int = 16
    access_log: bool = False
    worker_loglevel: str = "info"
    batch_procs: int = 1  # `batch` worker processes (started by start_batch_workers)
    batch_threads: int = 16  # threads of each `batch` worker process
    deployments: int = 1  # deployments of the bench's model, all on the stub (more: the cost of choosing one)


def prepare_database(url: str, *, fresh: bool) -> None:
    """Create the bench database (dropping it first when `fresh`); refuse the test suite's database."""
    parsed = make_url(url)
    name = parsed.database
    if not parsed.drivername.startswith("postgresql") or not name:
        raise BenchError(f"--database-url must be a postgresql:// URL with a database name, got {url!r}")
    if name in PROTECTED_DATABASES:
        raise BenchError(f"refusing to use database {name!r}: the bench needs a database of its own")
    admin = parsed.set(drivername="postgresql", database="postgres")
    conninfo = admin.render_as_string(hide_password=False)
    try:
        conn = psycopg.connect(conninfo, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        raise BenchError(f"cannot reach PostgreSQL at {admin.render_as_string()}: {exc}".strip()) from None
    with conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists and fresh:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
            exists = None
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def prepare_redis(url: str) -> None:
    """Empty the bench's Redis database (stale queues of an earlier run would be consumed otherwise)."""
    client = redis.Redis.from_url(url, socket_connect_timeout=5)
    index = int(client.connection_pool.connection_kwargs.get("db", 0))
    if index in PROTECTED_REDIS_DBS:
        raise BenchError(f"refusing to flush Redis database {index}: give the bench its own (e.g. {DEFAULT_REDIS_URL})")
    try:
        client.flushdb()
    except redis.RedisError as exc:
        raise BenchError(f"cannot reach Redis at {url}: {exc}") from None
    finally:
        client.close()


class Proxy:
    """The running proxy: its URL, the virtual key, and the processes behind it."""

    def __init__(self, procs: ProcessSet, config: ProxyConfig) -> None:
        self.procs = procs
        self.config = config
        self.env = {
            "DATABASE_URL": config.database_url,
            "REDIS_URL": config.redis_url,
            # Fresh secrets per run; the bench database is recreated, so nothing sealed with an old key remains.
            "ENCRYPTION_KEY": secrets.token_hex(32),
            "ADMIN_API_KEY": "bench-admin-" + secrets.token_urlsafe(24),
            "WEB_CONCURRENCY": str(config.web_workers),
            "WEB_THREADS": str(config.web_threads),
            "ACCESS_LOG": "-" if config.access_log else "off",
        }
        self.url: str | None = None
        self.key: str | None = None  # the virtual key without limits
        self.keys: dict[str, str] = {}  # name -> secret of every key create_key() made
        self.web: Child | None = None
        self.workers: list[Child] = []  # the `interactive` workers still running
        self.nodes: list[str] = []  # Celery node names, as their heartbeats name them
        self.batch_workers: list[Child] = []
        self.beat: Child | None = None
        self.writer: Child | None = None  # stores ended jobs and bills them (the Procfile's `writer`)

    def _cli(self, *args: str) -> str:
        return run_command([PYTHON, "-m", "llmproxy", *args], {**self.procs.env, **self.env})

    def prepare(self) -> None:
        """Create (or recreate) the bench database and empty the bench's Redis database."""
        prepare_database(self.config.database_url, fresh=self.config.fresh_database)
        prepare_redis(self.config.redis_url)

    def setup(self, stub_url: str) -> None:
        """Migrate + seed, point the providers at the stub, create the virtual key (after prepare())."""
        self._cli("setup")
        self._cli("providers", "edit", "openai", "--api-base", stub_url, "--api-key", "sk-bench")
        # gpt-3.5-turbo falls back to mistral-tiny: point that provider at the stub's Mistral dialect too, so no
        # request of the bench can ever leave the machine.
        mistral = stub_url.removesuffix("/v1") + "/mistral/v1"
        self._cli("providers", "edit", "mistral", "--api-base", mistral, "--api-key", "sk-bench")
        for _ in range(self.config.deployments - 1):
            self._cli("deployments", "add", MODEL, "--provider", "openai", "--upstream-model", MODEL)
        self.key = self.create_key("bench")

    def create_key(
        self, name: str, *, rpm: int | None = None, tpm: int | None = None, budget_usd: str | None = None
    ) -> str:
        """`llmproxy keys create` with these limits (none by default); return the secret."""
        args = ["keys", "create", "--name", name]
        for flag, value in (("--rpm", rpm), ("--tpm", tpm), ("--budget", budget_usd)):
            if value is not None:
                args += [flag, str(value)]
        created = self._cli(*args)
        try:
            self.keys[name] = json.loads(created)["key"]
        except (ValueError, KeyError):
            raise BenchError(f"`llmproxy keys create` printed no key:\n{created}") from None
        return self.keys[name]

    def start(self, interactive_procs: int | None = None) -> None:
        """Start the `interactive` workers (config.worker_procs unless given), then the web; wait until both serve."""
        cfg = self.config
        for i in range(cfg.worker_procs if interactive_procs is None else interactive_procs):
            node = f"bench{i + 1}@localhost"
            child = self.procs.start(
                f"worker{i + 1}",
                celery_worker(INTERACTIVE, threads=cfg.worker_threads, node=node, loglevel=cfg.worker_loglevel),
                self.env,
            )
            self.workers.append(child)
            self.nodes.append(node)
        if self.writer is None:
            self.writer = self.procs.start("writer", [PYTHON, "-m", "worker.writer"], self.env)
        port = free_port()
        self.web = self.procs.start(
            "web",
            [PYTHON, "-m", "gunicorn", "-c", "web/gunicorn_conf.py", "--bind", f"127.0.0.1:{port}", "web:create_app()"],
            self.env,
        )
        self.url = f"http://127.0.0.1:{port}"
        self._wait_ready()

    def _wait_ready(self) -> None:
        client = redis.Redis.from_url(self.config.redis_url)
        try:
            # A worker announces itself with a heartbeat per queue once it consumes (worker/app.py).
            wait_for(
                lambda: all(client.hexists(heartbeat_key(INTERACTIVE), n) for n in self.nodes),
                timeout=90,
                message="the Celery workers to consume `interactive`",
                watch=self.workers,
            )
        finally:
            client.close()

        def healthy() -> bool:
            try:
                return requests.get(self.url + "/healthz", timeout=1).status_code == 200
            except requests.RequestException:
                return False

        wait_for(healthy, timeout=60, message="gunicorn to answer /healthz", watch=[self.web])
        self._smoke_test()

    def _smoke_test(self) -> None:
        """One request of each kind must be served by the stub through the `openai` provider."""
        headers = {"Authorization": f"Bearer {self.key}"}
        body = {"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "ping"}]}
        resp = requests.post(self.url + "/v1/chat/completions", json=body, headers=headers, timeout=30)
        if resp.status_code != 200 or resp.headers.get("x-llmproxy-provider") != "openai":
            raise BenchError(
                f"the proxy's first request failed: {resp.status_code} "
                f"{resp.headers.get('x-llmproxy-provider')!r} {resp.text[:500]}\n"
                f"--- web:\n{self.web.tail()}\n--- worker1:\n{self.workers[0].tail()}"
            )
        with requests.post(
            self.url + "/v1/chat/completions", json={**body, "stream": True}, headers=headers, timeout=30, stream=True
        ) as resp:
            text = resp.text
        if resp.status_code != 200 or "data: [DONE]" not in text:
            raise BenchError(f"the proxy's first stream failed: {resp.status_code} {text[:500]}")

    def keep_interactive(self, n: int) -> None:
        """Stop the `interactive` workers beyond the first n (the batch scenario runs the Procfile's one)."""
        while len(self.workers) > n:
            child = self.workers.pop()
            node = self.nodes.pop()
            child.stop()
            client = redis.Redis.from_url(self.config.redis_url)
            try:
                client.hdel(heartbeat_key(INTERACTIVE), node)
            finally:
                client.close()

    def start_batch_workers(self, *, beat: bool = False) -> None:
        """Start config.batch_procs of the Procfile's `batch` process (a Celery worker on `batch` with
        config.batch_threads threads each) and, with `beat`, the scheduler; wait until every worker consumes."""
        cfg = self.config
        nodes = [f"benchbatch{i + 1}@localhost" for i in range(cfg.batch_procs)]
        for i, node in enumerate(nodes):
            self.batch_workers.append(
                self.procs.start(
                    f"batch{i + 1}",
                    celery_worker(BATCH, threads=cfg.batch_threads, node=node, loglevel=cfg.worker_loglevel),
                    self.env,
                )
            )
        if beat:
            schedule = self.procs.log_dir / "celerybeat-schedule"  # not the default ./celerybeat-schedule
            self.beat = self.procs.start(
                "beat",
                [
                    PYTHON,
                    "-m",
                    "celery",
                    "-A",
                    "worker.main",
                    "beat",
                    "-s",
                    str(schedule),
                    "--loglevel",
                    cfg.worker_loglevel,
                ],
                self.env,
            )
        client = redis.Redis.from_url(cfg.redis_url)
        try:
            wait_for(
                lambda: all(client.hexists(heartbeat_key(BATCH), node) for node in nodes),
                timeout=90,
                message="the Celery batch workers to consume `batch`",
                watch=[*self.batch_workers, *([self.beat] if self.beat else [])],
            )
        finally:
            client.close()
        # The ideal of the report is procs × threads / latency: make sure each worker runs that many (its banner).
        for child in self.batch_workers:
            banner = re.search(r"concurrency:\s*(\d+)", child.output())
            if banner and int(banner.group(1)) != cfg.batch_threads:
                raise BenchError(f"{child.name} runs {banner.group(1)} threads, not {cfg.batch_threads}")

    def children(self) -> list[Child]:
        """Every proxy process still running (to watch for crashes)."""
        # The writer too: interactive jobs' records and every batch line end through it.
        return [c for c in (*self.workers, *self.batch_workers, self.beat, self.writer, self.web) if c is not None]

    def describe(self) -> dict:
        """The topology, for the report."""
        cfg = self.config
        return {
            "web_workers": cfg.web_workers,
            "web_threads": cfg.web_threads,
            "worker_procs": cfg.worker_procs,
            "worker_threads": cfg.worker_threads,
            "access_log": cfg.access_log,
            "worker_loglevel": cfg.worker_loglevel,
            "deployments": cfg.deployments,
            "database": make_url(cfg.database_url).render_as_string(hide_password=True),
            "redis": cfg.redis_url,
        }
