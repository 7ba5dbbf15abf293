"""The web's gunicorn worker quits on the first SIGINT/SIGQUIT, ignores the next, and takes no lock doing so.

gthread's own handler shuts its thread pool down inside the signal handler; when the main thread was
interrupted while holding the pool's lock (in `submit()`, or in a first run of the same handler), it waits
for that lock for ever. The handler is called directly here, in a helper thread, with the lock held.
"""

from __future__ import annotations

import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

from web.gunicorn_worker import ThreadWorker


def quitting_worker() -> ThreadWorker:
    """A ThreadWorker with just what its quit handler reads (the rest needs a running arbiter)."""
    worker = ThreadWorker.__new__(ThreadWorker)
    worker._quitting = False
    worker.alive = True
    worker.tpool = ThreadPoolExecutor(max_workers=1)
    worker.cfg = SimpleNamespace(worker_int=lambda _worker: None)
    return worker


def call_handler(worker: ThreadWorker) -> BaseException | None:
    """Run the quit handler in a thread; return what it raised (None if it returned), or fail if it hangs."""
    raised: list[BaseException | None] = [None]

    def handle():
        try:
            worker.handle_quit(signal.SIGQUIT, None)
        except BaseException as exc:
            raised[0] = exc

    thread = threading.Thread(target=handle, daemon=True)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), "the quit handler is blocked"
    return raised[0]


def test_quit_exits_without_the_pools_lock_and_a_second_quit_is_ignored():
    worker = quitting_worker()
    with worker.tpool._shutdown_lock:  # as if the signal came while the main loop was in submit()
        first = call_handler(worker)
        second = call_handler(worker)
    assert isinstance(first, SystemExit) and first.code == 0
    assert second is None
    assert worker.alive is False
    worker.tpool.shutdown()
