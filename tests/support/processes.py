"""Start the real processes (Celery workers, gunicorn web) for tests, and wait for them by condition."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import redis
import requests

from llmproxy.devtools.net import free_port
from llmproxy.devtools.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ADMIN_KEY = "admin-test-key-0123456789"


def base_env() -> dict[str, str]:
    """The settings every test process runs with, but where its database and Redis are (a fresh ENCRYPTION_KEY)."""
    return {
        "ENCRYPTION_KEY": secrets.token_hex(32),
        "ADMIN_API_KEY": ADMIN_KEY,
        "RETRY_BASE_SECONDS": "0.01",
        "RETRY_MAX_SECONDS": "2",
        "UPSTREAM_READ_TIMEOUT": "3",
        "UPSTREAM_CONNECT_TIMEOUT": "2",
        "JOB_LEASE_SECONDS": "3",
        "SYNC_TIMEOUT_SECONDS": "30",
    }


def side_by_side(action, processes) -> None:
    """Run `action(process)` for every process at once (start() and stop() each wait for their process)."""
    errors: list[BaseException] = []

    def run(process):
        try:
            action(process)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(p,)) for p in processes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


class _Process:
    def __init__(self, env: dict, args: list[str], name: str) -> None:
        self.env = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
        self.args = args
        self.name = name
        self.proc: subprocess.Popen | None = None
        self.log = tempfile.NamedTemporaryFile(prefix=f"llmproxy-{name}-", suffix=".log", delete=False)  # noqa: SIM115 - closed in stop()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.args, cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.wait_ready()

    def wait_ready(self) -> None:  # pragma: no cover - overridden
        pass

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the whole process group, as a crash would."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


class WorkerProcess(_Process):
    """`celery -A worker.main worker` on the given queues, ready when it sends its first heartbeat."""

    def __init__(self, env: dict, queues: str = "interactive,batch", concurrency: int = 8) -> None:
        self.node = f"test{free_port()}@localhost"
        super().__init__(
            env,
            [
                str(BIN / "celery"),
                "-A",
                "worker.main",
                "worker",
                "-Q",
                queues,
                "-P",
                "threads",
                "-c",
                str(concurrency),
                "-n",
                self.node,
                "--without-gossip",
                "--without-mingle",
                "--loglevel",
                "info",
            ],
            "worker",
        )
        self.queues = queues.split(",")

    def wait_ready(self) -> None:
        client = redis.Redis.from_url(self.env["REDIS_URL"])

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited:\n{self.output()[-3000:]}")
            return all(client.hexists(f"llmproxy:consumers:{q}", self.node) for q in self.queues)

        try:
            wait_for(ready, timeout=60, message="the worker to start")
        finally:
            client.close()


class WriterProcess(_Process):
    """`python -m worker.writer`: stores ended jobs and bills them; ready when it sends its first heartbeat."""

    def __init__(self, env: dict) -> None:
        super().__init__(env, [sys.executable, "-m", "worker.writer"], "writer")

    def start(self) -> None:
        client = redis.Redis.from_url(self.env["REDIS_URL"])
        self._known = set(client.hkeys("llmproxy:consumers:writer"))  # before it can send its first heartbeat
        client.close()
        super().start()

    def wait_ready(self) -> None:
        client = redis.Redis.from_url(self.env["REDIS_URL"])
        known = self._known

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"writer exited:\n{self.output()[-3000:]}")
            return bool(set(client.hkeys("llmproxy:consumers:writer")) - known)

        try:
            wait_for(ready, timeout=60, message="the writer to start")
        finally:
            client.close()


class WebProcess(_Process):
    """gunicorn serving `web:create_app()` on a free port, ready when /healthz answers."""

    def __init__(self, env: dict, workers: int = 2) -> None:
        self.port = free_port()
        super().__init__(
            {**env, "WEB_CONCURRENCY": str(workers), "ACCESS_LOG": ""},
            [
                str(BIN / "gunicorn"),
                "-c",
                "web/gunicorn_conf.py",
                "--bind",
                f"127.0.0.1:{self.port}",
                "web:create_app()",
            ],
            "web",
        )
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_ready(self) -> None:
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"web exited:\n{self.output()[-3000:]}")
            try:
                return requests.get(self.url + "/healthz", timeout=5).status_code == 200
            except requests.RequestException:
                return False

        wait_for(ready, timeout=60, message="the web process to start")


class BeatProcess(_Process):
    """`celery -A worker.main beat`: the periodic sweeper of lost jobs; ready once it has started."""

    def __init__(self, env: dict) -> None:
        # The schedule file goes to a temporary directory, never into the repository.
        self.schedule = os.path.join(tempfile.mkdtemp(prefix="llmproxy-beat-"), "schedule")
        super().__init__(
            env,
            [
                str(BIN / "celery"),
                "-A",
                "worker.main",
                "beat",
                "-s",
                self.schedule,
                "--max-interval",
                "1",
                "--loglevel",
                "info",
            ],
            "beat",
        )

    def wait_ready(self) -> None:
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"beat exited:\n{self.output()[-3000:]}")
            return "beat: Starting" in self.output()

        wait_for(ready, timeout=60, message="celery beat to start")


class LiveServer:
    """The app served over real HTTP by werkzeug in a thread (for the openai SDK and streams)."""

    def __init__(self, app) -> None:
        from werkzeug.serving import make_server

        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        # A short poll interval: shutdown() waits up to one interval (0.5 s by default) per test.
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self.server.shutdown()
        self.server.server_close()
