"""gunicorn's threaded worker, with a quick-exit handler that a second signal cannot deadlock.

gthread's own SIGINT/SIGQUIT handler shuts the thread pool down from inside the signal handler, which
takes the pool's (non-reentrant) lock. Ctrl-C in a terminal reaches a worker twice, directly and as the
SIGQUIT its master sends on SIGINT; a second signal landing while the first handler (or the main loop's
`submit`) holds that lock re-enters it, and the worker hangs for good, holding the port if its master
is gone. This handler runs once and leaves the pool alone: exiting the interpreter stops idle threads
anyway, and gunicorn's master kills a worker that outlives its graceful timeout.
"""

from __future__ import annotations

from types import FrameType
from typing import Any

from gunicorn.workers.base import Worker as _BaseWorker
from gunicorn.workers.gthread import ThreadWorker as _GthreadWorker


class ThreadWorker(_GthreadWorker):
    """gthread, except that a repeated quit signal is ignored and the handler takes no lock."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._quitting = False

    def handle_quit(self, sig: int, frame: FrameType | None) -> None:
        """Exit at once, the first time only (later SIGINT/SIGQUIT are ignored while it exits)."""
        if self._quitting:
            return
        self._quitting = True
        _BaseWorker.handle_quit(self, sig, frame)  # alive = False, worker_int hook, then sys.exit(0)
