"""Each Procfile process run on its own, stopped by SIGTERM/SIGINT sequences as a process manager would.

honcho, foreman, systemd or Kubernetes send SIGTERM (a terminal's Ctrl-C is SIGINT), sometimes twice,
and kill what still runs after about 30 s. Each role must end with all its children within that time,
leave no process behind (and free its port), and a synchronous request in flight on the process under
test must still be answered: finished where it runs, or re-sent to another worker by the sweeper.
"""

from __future__ import annotations

import os
import signal
import socket
import threading

import psutil
import pytest
import requests

from llmproxy.devtools.stub_responses import Ok, Slow
from llmproxy.devtools.waiting import wait_for
from tests.support.processes import BeatProcess, WebProcess, WorkerProcess, WriterProcess, _Process, side_by_side

# What a process manager gives a process before SIGKILL (systemd's and Kubernetes' default is 30 s).
STOP_SECONDS = 30
MODEL = "gpt-3.5-turbo"


def _tree(process: _Process) -> list[psutil.Process]:
    """The process and every process it started (gunicorn's workers, say), taken while they all run."""
    assert process.proc is not None
    root = psutil.Process(process.proc.pid)
    return [root, *root.children(recursive=True)]


def _gone(process: psutil.Process) -> bool:
    try:
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _send(process: _Process, signals: tuple[signal.Signals, ...], *, group: bool = False) -> None:
    """Send the signals one after the other, to the process or (as systemd's control group kill) its group."""
    assert process.proc is not None
    for signum in signals:
        if group:
            os.killpg(process.proc.pid, signum)
        else:
            os.kill(process.proc.pid, signum)


def _assert_all_end(process: _Process, tree: list[psutil.Process]) -> None:
    """Every process of the tree is gone within STOP_SECONDS of the signal, none left orphaned."""
    try:
        wait_for(lambda: all(_gone(p) for p in tree), timeout=STOP_SECONDS, interval=0.1)
    except TimeoutError:
        alive = [f"{p.pid}: {' '.join(p.cmdline())}" for p in tree if not _gone(p)]
        raise AssertionError(f"still running after {STOP_SECONDS} s: {alive}\n{process.output()[-3000:]}") from None
    assert process.proc is not None
    process.proc.wait(5)


class _Caller:
    """A synchronous chat completion sent from a thread; `answer()` waits for its response."""

    def __init__(self, url: str, secret: str, timeout: float = 60) -> None:
        self.outcome: dict = {}

        def call() -> None:
            try:
                self.outcome["response"] = requests.post(
                    url + "/v1/chat/completions",
                    timeout=timeout,
                    json={"model": MODEL, "messages": [{"role": "user", "content": "in flight"}]},
                    headers={"Authorization": f"Bearer {secret}"},
                )
            except requests.RequestException as exc:
                self.outcome["error"] = exc

        self.timeout = timeout
        self.thread = threading.Thread(target=call, daemon=True)
        self.thread.start()

    def answer(self) -> str:
        """The answer's content, once a 200 arrived (fails on anything else)."""
        self.thread.join(self.timeout + 5)
        assert not self.thread.is_alive(), "the request did not end"
        assert "error" not in self.outcome, self.outcome.get("error")
        response = self.outcome["response"]
        assert response.status_code == 200, response.text
        return response.json()["choices"][0]["message"]["content"]


def _in_flight(upstream) -> None:
    wait_for(lambda: upstream.chat_bodies(MODEL), timeout=20, message="the upstream to receive the request")


TERM, INT = signal.SIGTERM, signal.SIGINT


@pytest.mark.parametrize(
    ("signals", "group"),
    # To the master: SIGTERM is gunicorn's graceful stop, SIGINT its quick one (workers get SIGQUIT). To the
    # group, as systemd's control-group kill: each worker hears the signal directly and again from its master.
    [((TERM,), False), ((INT,), False), ((INT, TERM), False), ((TERM, TERM), True)],
    ids=["term", "int", "int-term", "term-term-group"],
)
def test_web_answers_its_request_in_flight_and_ends(e2e_env, make_key, upstream, signals, group):
    secret, _key = make_key(name="web-shutdown")
    upstream.script(MODEL, Slow(2, content="finished while stopping"))
    worker, web = WorkerProcess(e2e_env, concurrency=2), WebProcess(e2e_env, workers=2)
    started = [worker, web]
    try:
        side_by_side(lambda p: p.start(), started)
        # /healthz may be answered by the first worker before the master has forked the second.
        tree = wait_for(lambda: len(_tree(web)) == 3 and _tree(web), timeout=30, message="both gunicorn workers")
        caller = _Caller(web.url, secret)
        _in_flight(upstream)

        _send(web, signals, group=group)

        assert caller.answer() == "finished while stopping"
        _assert_all_end(web, tree)
        with socket.socket() as probe:  # nothing listens on the port any more (TIME_WAIT is no owner)
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", web.port))
            probe.listen()
    finally:
        side_by_side(lambda p: p.stop(), started)


@pytest.mark.parametrize(
    # SIGTERM and a first SIGINT both start the warm shutdown, where a later SIGTERM changes nothing; a second
    # SIGINT asks for a cold one, which a thread pool cannot do (Celery raises in its handler).
    "signals",
    [(TERM, TERM), (INT, INT)],
    ids=["term-term", "int-int"],
)
def test_worker_finishes_its_running_job_and_ends(e2e_env, make_key, upstream, signals):
    """Celery's warm shutdown (a second Ctrl-C would be a cold one) lets the running job end where it runs."""
    secret, _key = make_key(name="worker-shutdown")
    upstream.script(MODEL, Slow(2, content="finished while stopping"))
    worker, web = WorkerProcess(e2e_env, concurrency=2), WebProcess(e2e_env, workers=1)
    started = [worker, web]
    try:
        side_by_side(lambda p: p.start(), started)
        caller = _Caller(web.url, secret)
        _in_flight(upstream)
        tree = _tree(worker)

        _send(worker, signals)

        assert caller.answer() == "finished while stopping"
        assert len(upstream.chat_bodies(MODEL)) == 1  # run once: not re-sent
        _assert_all_end(worker, tree)
    finally:
        side_by_side(lambda p: p.stop(), started)


def test_worker_stuck_on_a_slow_provider_ends_and_its_job_passes_to_another(e2e_env, make_key, upstream):
    """A job outlasting STOP_GRACE_SECONDS: the worker exits anyway, the sweeper re-sends the job elsewhere."""
    secret, _key = make_key(name="worker-handover")
    # The provider, not the read timeout, decides; the caller waits out the grace, a lease and a sweep.
    env = {**e2e_env, "UPSTREAM_READ_TIMEOUT": "120", "SYNC_TIMEOUT_SECONDS": "90"}
    upstream.script(MODEL, Slow(120, content="never sent"), Ok(content="answered elsewhere"))
    victim, web = WorkerProcess(env, concurrency=2), WebProcess(env, workers=1)
    survivor, beat = WorkerProcess(env, concurrency=2), BeatProcess(env)
    started = [victim, web]
    try:
        side_by_side(lambda p: p.start(), started)
        caller = _Caller(web.url, secret, timeout=90)
        _in_flight(upstream)
        started += [survivor, beat]
        side_by_side(lambda p: p.start(), [survivor, beat])
        tree = _tree(victim)

        _send(victim, (TERM, INT, TERM))  # warm, cold (which a thread pool cannot do), ignored

        _assert_all_end(victim, tree)
        assert caller.answer() == "answered elsewhere"
    finally:
        side_by_side(lambda p: p.stop(), started)


def _batch_worker(env: dict) -> _Process:
    return WorkerProcess(env, queues="batch", concurrency=4)


@pytest.mark.parametrize(
    ("role", "signals"),
    [
        (_batch_worker, (TERM, TERM)),
        (_batch_worker, (INT, TERM)),
        (WriterProcess, (TERM,)),
        (WriterProcess, (INT, TERM)),
        (BeatProcess, (TERM, TERM)),
        (BeatProcess, (INT, TERM)),
    ],
    ids=["batch-term-term", "batch-int-term", "writer-term", "writer-int-term", "beat-term-term", "beat-int-term"],
)
def test_idle_role_ends_with_everything_it_started(e2e_env, db, role, signals):
    process = role(e2e_env)
    try:
        process.start()
        tree = _tree(process)

        _send(process, signals)

        _assert_all_end(process, tree)
    finally:
        process.stop()
