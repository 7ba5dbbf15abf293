"""Loopback ports for the dev tools, the tests and the benchmark (the embedded Redis, stubs, test servers)."""

from __future__ import annotations

import socket


def free_port() -> int:
    """Return a loopback TCP port that is free right now (the OS picks it; another process may take it later)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
