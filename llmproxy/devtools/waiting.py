"""Poll with a deadline: the one way the tests, the benchmark and the dev tools wait for something to happen."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(condition: Callable[[], T], *, timeout: float, interval: float = 0.02, message: str = "a condition") -> T:
    """Call `condition` until it returns a truthy value, and return that value.

    It is called at once, then every `interval` seconds, and a last time once `timeout` seconds have
    passed; if that one is falsy too, TimeoutError names `message`. Whatever `condition` raises
    propagates at once (a watched process that exited, say).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {message}")
        time.sleep(min(interval, left))
