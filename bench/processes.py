"""Child processes of the benchmark: each in its own process group, every one stopped when the bench ends.

A child runs in a new session, so a Ctrl-C in the terminal reaches only the bench, which then
stops the children in order (web before workers before the stub). Each child also asks the
kernel for SIGTERM when the bench dies without cleaning up (SIGKILL, a crash), so nothing
outlives it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from llmproxy.devtools.waiting import wait_for as _wait_for

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass  # not Linux: cleanup still happens through ProcessSet.stop_all()


class BenchError(RuntimeError):
    """The bench could not run (a process failed to start, a setup command failed)."""


class Child:
    """One long-running child process, logging to a file, stopped by process group."""

    def __init__(self, name: str, args: Sequence[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.args = list(args)
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> Child:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                self.args,
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    def check_alive(self) -> None:
        """Raise BenchError with the log's tail if the process has exited."""
        if not self.alive():
            code = self.proc.returncode if self.proc else None
            raise BenchError(f"{self.name} exited (code {code}); last lines of {self.log_path}:\n{self.tail()}")

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the whole process group, SIGKILL it after `grace` seconds."""
        if self.proc is None:
            return
        pgid = self.proc.pid  # start_new_session: the child leads its own group
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            if _group_gone(pgid, self.proc, wait):
                break
        if self.proc.poll() is None:
            self.proc.wait(5)


def _group_gone(pgid: int, proc: subprocess.Popen, timeout: float) -> bool:
    """Wait until the leader is reaped and no process of the group is left."""

    def gone() -> bool:
        proc.poll()
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        return False

    try:
        return _wait_for(gone, timeout=timeout, interval=0.05, message=f"process group {pgid} to exit")
    except TimeoutError:
        return False


class ProcessSet:
    """The children this bench started; stop_all() stops them newest first."""

    def __init__(self, log_dir: Path, env: dict[str, str]) -> None:
        self.log_dir = log_dir
        self.env = env
        self.children: list[Child] = []

    def start(self, name: str, args: Sequence[str], env: dict[str, str] | None = None) -> Child:
        child = Child(name, args, {**self.env, **(env or {})}, self.log_dir)
        self.children.append(child)
        return child.start()

    def stop_all(self, grace: float = 10.0) -> None:
        while self.children:
            child = self.children.pop()
            try:
                child.stop(grace)
            except Exception as exc:  # noqa: BLE001 - keep stopping the others, say what failed
                print(f"bench: could not stop {child.name} (pid {child.pid}): {exc}", file=sys.stderr)


def run_command(args: Sequence[str], env: dict[str, str], *, timeout: float = 120.0) -> str:
    """Run a short command to completion; its stdout, or BenchError with its output."""
    try:
        done = subprocess.run(
            list(args),
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    except subprocess.TimeoutExpired:
        raise BenchError(f"{' '.join(args[:4])} … timed out after {timeout}s") from None
    if done.returncode != 0:
        raise BenchError(f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}".rstrip())
    return done.stdout


def wait_for(
    condition: Callable[[], object],
    *,
    timeout: float,
    message: str,
    watch: Sequence[Child] = (),
    interval: float = 0.05,
):
    """Poll `condition` until truthy; BenchError after `timeout` or as soon as a watched child exits."""

    def watched():
        for child in watch:
            child.check_alive()
        return condition()

    try:
        return _wait_for(watched, timeout=timeout, interval=interval, message=message)
    except TimeoutError:
        tails = "".join(f"\n--- {c.name} ({c.log_path}):\n{c.tail()}" for c in watch)
        raise BenchError(f"timed out after {timeout:.0f}s waiting for {message}{tails}") from None
