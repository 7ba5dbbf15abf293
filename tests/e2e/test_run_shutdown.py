"""`make run` stopped by Ctrl-C and, at once, SIGTERM: every process ends within a deadline and frees the port.

`python -m llmproxy run` (what `make run` runs) in its own session, as a terminal's foreground process group,
on a fresh instance directory (its own instance/.env, SQLite file and beat schedule) and its own embedded
Redis. SIGINT then SIGTERM go to that whole group, as a terminal's Ctrl-C followed by a process manager's
SIGTERM would. Before this was fixed, both signals reached every child, a gunicorn worker could deadlock
in its quit handler, and the supervisor killed its master only, leaving the worker orphaned on the port.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import requests

from llmproxy.devtools.net import free_port
from llmproxy.devtools.supervisor import STOP_GRACE_SECONDS
from llmproxy.devtools.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
# The supervisor kills what is left STOP_GRACE_SECONDS after the first signal; the rest is slack for a busy machine.
DEADLINE_SECONDS = STOP_GRACE_SECONDS + 30


def _environment(instance: Path, port: int) -> dict[str, str]:
    # As on a fresh machine: no database, Redis or secrets given; `run` makes them all in the instance directory.
    unset = ("DATABASE_URL", "TEST_DATABASE_URL", "REDIS_URL", "ENCRYPTION_KEY", "ADMIN_API_KEY", "HOST")
    env = {name: value for name, value in os.environ.items() if name not in unset}
    return {**env, "LLMPROXY_INSTANCE_DIR": str(instance), "PORT": str(port), "WEB_CONCURRENCY": "2"}


def _gone(process: psutil.Process) -> bool:
    try:
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _listeners(processes: list[psutil.Process], port: int) -> set[str]:
    """The addresses the processes listen on at `port`."""
    found = set()
    for process in processes:
        try:
            found |= {
                c.laddr.ip
                for c in process.net_connections("tcp")
                if c.status == psutil.CONN_LISTEN and c.laddr.port == port
            }
        except psutil.NoSuchProcess:
            pass
    return found


def _describe(processes: list[psutil.Process]) -> str:
    lines = []
    for process in processes:
        try:
            lines.append(f"{process.pid} {process.status()}: {' '.join(process.cmdline())}")
        except psutil.NoSuchProcess:
            pass
    return "\n".join(lines)


def test_sigint_then_sigterm_stops_every_process_and_frees_the_port(tmp_path):
    instance, port = tmp_path / "instance", free_port()
    instance.mkdir()
    log = (instance / "run.log").open("wb")
    run = subprocess.Popen(
        [sys.executable, "-m", "llmproxy", "run", "--workers", "1"],
        cwd=ROOT,
        env=_environment(instance, port),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    output = lambda: (instance / "run.log").read_text(errors="replace")[-4000:]  # noqa: E731
    everyone: list[psutil.Process] = []
    try:

        def ready():
            if run.poll() is not None:
                raise AssertionError(f"`run` exited early:\n{output()}")
            try:
                return requests.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200
            except requests.RequestException:
                return False

        wait_for(ready, timeout=180, interval=0.2, message="every process of `run` to be ready")
        everyone += [psutil.Process(run.pid), *psutil.Process(run.pid).children(recursive=True)]
        names = _describe(everyone)
        for part in ("gunicorn", "worker.writer", " beat ", "worker.main worker", "redis-server"):
            assert part in names, f"{part!r} is not running:\n{names}"
        assert _listeners(everyone, port) == {"127.0.0.1"}  # HOST is unset: loopback only

        os.killpg(run.pid, signal.SIGINT)
        os.killpg(run.pid, signal.SIGTERM)

        try:
            wait_for(lambda: all(_gone(p) for p in everyone), timeout=DEADLINE_SECONDS, interval=0.1)
        except TimeoutError:
            survivors = [p for p in everyone if not _gone(p)]
            raise AssertionError(f"still running:\n{_describe(survivors)}\n\n{output()}") from None
        assert run.wait(5) == 0, output()
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no owner; a listener is
            probe.bind(("127.0.0.1", port))
            probe.listen()
    finally:
        if not everyone and run.poll() is None:
            everyone = [psutil.Process(run.pid), *psutil.Process(run.pid).children(recursive=True)]
        for process in everyone:
            if not _gone(process):  # a failed run must not leave processes holding ports behind
                process.kill()
        run.wait(10)
        log.close()
