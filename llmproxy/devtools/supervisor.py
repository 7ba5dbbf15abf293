"""Run `make run`'s processes in the foreground and stop them all, once, within a deadline.

Each child runs in a process group of its own, so a terminal's Ctrl-C (or a signal sent to our own
group) reaches this supervisor alone; it then sends one SIGTERM to each child and, after a grace period,
SIGKILLs each child's whole group. A child never sees two shutdown signals, which is what left a gunicorn
worker deadlocked in its thread pool's shutdown (a re-entered signal handler: Ctrl-C reached it directly
and again through its master), and no grandchild (a gunicorn worker) can outlive the run holding the port.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import FrameType

STOP_GRACE_SECONDS = 10.0  # SIGKILL after this: every process is crash-safe, a graceful end is a courtesy
_POLL_SECONDS = 0.2


class Supervisor:
    """Children started by name; `wait()` until told to stop, then `stop()` them all (see the module docstring)."""

    def __init__(self, say: Callable[[str], None], grace_seconds: float = STOP_GRACE_SECONDS) -> None:
        """From here on (main thread only), SIGINT and SIGTERM are requests to stop, never exceptions."""
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._say = say
        self._grace = grace_seconds
        self._signals: list[int] = []
        self._stopped = False
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._on_signal)

    def start(self, commands: Mapping[str, list[str]], cwd: Path) -> None:
        """Start each command in a new session (its own process group), output to our streams."""
        for name, command in commands.items():
            if self._signals:
                return  # told to stop while starting: start no more
            self.procs[name] = subprocess.Popen(command, cwd=cwd, start_new_session=True)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        # Only recorded: the loops below act on the first one; later ones change nothing.
        self._signals.append(signum)

    def wait(self) -> None:
        """Return on SIGINT/SIGTERM or once a child has exited (saying which)."""
        while not self._signals:
            dead = [name for name, p in self.procs.items() if p.poll() is not None]
            if dead:
                self._say(f"{', '.join(dead)} exited; stopping the rest")
                return
            time.sleep(_POLL_SECONDS)

    def stop(self) -> None:
        """SIGTERM each live child once; SIGKILL every child's process group once the grace period is over."""
        if self._stopped:
            return
        self._stopped = True
        for p in self.procs.values():
            if p.poll() is None:
                _signal(p.pid, signal.SIGTERM, group=False)  # its own children hear from it, not from us
        deadline = time.monotonic() + self._grace
        heard = len(self._signals)
        while any(p.poll() is None for p in self.procs.values()) and time.monotonic() < deadline:
            if len(self._signals) > heard:  # a second Ctrl-C: say why nothing more happens yet
                heard = len(self._signals)
                self._say(f"already stopping; what still runs is killed in {deadline - time.monotonic():.0f} s")
            time.sleep(_POLL_SECONDS)
        for name, p in self.procs.items():
            if p.poll() is None:
                self._say(f"{name} did not stop within {self._grace:g} s; killing it")
            # The whole group: a child that exited may have left its own children behind.
            _signal(p.pid, signal.SIGKILL, group=True)
        for p in self.procs.values():
            p.wait()


def _signal(pid: int, signum: int, *, group: bool) -> None:
    try:
        if group:
            os.killpg(pid, signum)  # the group id is the child's pid: it leads its own session
        else:
            os.kill(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass  # already gone (a zombie's group may refuse signals on some systems)
