"""Dependencies a fault test may kill and restart: a PostgreSQL cluster of its own (Redis: EmbeddedRedis).

The shared Redis and PostgreSQL serve other test runs at the same time: a fault test never stops
them. It starts these scratch instances in a temporary directory instead, on free loopback ports,
and migrates and seeds a database of its own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests

from llmproxy.catalog.defaults import seed_defaults
from llmproxy.catalog.provider_config import update_provider
from llmproxy.devtools.net import free_port
from llmproxy.devtools.stub_upstream import StubUpstream
from llmproxy.keys.virtual_keys import create_key
from llmproxy.storage import migrate
from llmproxy.storage.engine import make_engine, make_session_factory, session_scope

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _pg_user() -> str | None:
    # initdb and postgres refuse to run as root: as root, run them as the postgres account instead.
    return "postgres" if os.geteuid() == 0 else None


class ScratchPostgres:
    """A PostgreSQL cluster of its own (initdb, trust auth) on a free port, stopped and started with pg_ctl."""

    available = (PG_BIN / "initdb").exists() and (PG_BIN / "pg_ctl").exists()

    def __init__(self) -> None:
        self.port = free_port()
        self.root = tempfile.mkdtemp(prefix="llmproxy-pg-")
        self.data = os.path.join(self.root, "data")
        self.sockets = os.path.join(self.root, "sock")
        os.mkdir(self.sockets)
        if (user := _pg_user()) is not None:
            for path in (self.root, self.sockets):
                shutil.chown(path, user)
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self._run(PG_BIN / "initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8")

    def _run(self, binary: Path, *args: str, check: bool = True) -> None:
        done = subprocess.run([str(binary), *args], capture_output=True, check=False, user=_pg_user())
        if check and done.returncode != 0:
            raise AssertionError(
                f"{binary.name} {' '.join(args)} failed:\n{done.stdout.decode()}{done.stderr.decode()}"
            )

    def _pg_ctl(self, *args: str) -> None:
        options = f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(PG_BIN / "pg_ctl", "-D", self.data, "-o", options, "-l", os.path.join(self.root, "log"), "-w", *args)

    def start(self) -> None:
        """Start the cluster and wait until it accepts connections (pg_ctl -w)."""
        self._pg_ctl("start")

    def stop(self) -> None:
        """Stop it as an operator's fast shutdown does: open connections are cut, new ones refused."""
        self._pg_ctl("stop", "-m", "fast")

    def close(self) -> None:
        """Stop the cluster (whatever state it is in) and remove its files."""
        self._run(PG_BIN / "pg_ctl", "-D", self.data, "stop", "-m", "immediate", check=False)
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class Gateway:
    """A migrated, seeded database whose providers point at the stub, and one virtual key on it."""

    url: str
    secret: str
    key_id: str


def prepare_database(url: str, stub: StubUpstream, *, encryption_key: str, key_fields: dict | None = None) -> Gateway:
    """Migrate `url` with Alembic, insert the default catalog pointed at the stub and create a key."""
    migrate.upgrade(url)
    engine = make_engine(url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            seed_defaults(session)
            for name, api_base in (("openai", stub.url), ("mistral", stub.mistral_url)):
                update_provider(
                    session,
                    name,
                    {"api_base": api_base, "api_key": f"sk-{name}-default"},
                    encryption_key=bytes.fromhex(encryption_key),
                )
            key, secret = create_key(session, {"name": "fault", **(key_fields or {})})
            key_id = key.id
    finally:
        engine.dispose()
    return Gateway(url=url, secret=secret, key_id=key_id)


def sqlite_url() -> str:
    """A new SQLite database file in a temporary directory."""
    return f"sqlite:///{tempfile.mkdtemp(prefix='llmproxy-fault-')}/fault.db"


def pause(seconds: float) -> None:
    """Keep an outage going this long (the fault itself, never a wait for work)."""
    time.sleep(seconds)


@dataclass
class Answered:
    """One request a LoopingClients thread sent, and how it was answered."""

    label: str  # what made it unique (its message's content)
    phase: str  # "before", "outage" or "after" the restart, as the client saw it when it sent the request
    sent: float
    took: float
    status: int
    body: dict | None
    text: str
    request_id: str | None


# What one request is: given the thread's and the request's numbers, send it; return (label, response).
Send = Callable[[int, int], tuple[str, requests.Response]]


class LoopingClients:
    """Threads that each send one request after another until stopped, recording every answer.

    A request that raises (a hang past its timeout, a dropped connection) stops its thread and is kept
    in `errors`: the fault tests expect every request to be answered.
    """

    def __init__(self, send: Send, *, threads: int, join_seconds: float) -> None:
        self.phase = "before"
        self.answers: list[Answered] = []
        self.errors: list[BaseException] = []
        self.stopping = threading.Event()
        self._send = send
        self._join_seconds = join_seconds
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(threads)]

    def start(self) -> None:
        """Start sending."""
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Stop sending; every request has been answered."""
        self.stopping.set()
        for thread in self._threads:
            thread.join(self._join_seconds)
        assert not any(t.is_alive() for t in self._threads), "a request hung"

    def with_status(self, status: int, phase: str | None = None) -> list[Answered]:
        """The answers with this status (to requests sent in this phase, if given)."""
        with self._lock:
            return [a for a in self.answers if a.status == status and phase in (None, a.phase)]

    def last(self, n: int) -> list[Answered]:
        """The last n answers."""
        with self._lock:
            return self.answers[-n:]

    def _run(self, n: int) -> None:
        i = 0
        while not self.stopping.is_set():
            phase, sent = self.phase, time.monotonic()
            try:
                label, r = self._send(n, i)
            except requests.RequestException as exc:
                self.errors.append(exc)
                return
            try:
                body = r.json()
            except ValueError:
                body = None
            answered = Answered(
                label,
                phase,
                sent,
                time.monotonic() - sent,
                r.status_code,
                body,
                r.text[:500],
                r.headers.get("x-request-id"),
            )
            with self._lock:
                self.answers.append(answered)
            i += 1
