"""The stub upstream (tests/support/stub_upstream.py) in its own process, with a set latency."""

from __future__ import annotations

import re

import requests

from bench.processes import PYTHON, Child, ProcessSet, wait_for

_URL = re.compile(r"^(http://\S+/v1)\s*$", re.MULTILINE)


def start_stub(procs: ProcessSet, *, latency_ms: float, timeout: float = 30.0) -> tuple[Child, str]:
    """Start the stub on a free loopback port; return it and its OpenAI-style base URL (…/v1)."""
    child = procs.start(
        "stub",
        [
            PYTHON,
            "-u",
            "-m",
            "tests.support.stub_upstream",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--latency-ms",
            str(latency_ms),
        ],
    )

    def listening() -> str | None:
        match = _URL.search(child.output())
        return match.group(1) if match else None

    url = wait_for(listening, timeout=timeout, message="the stub upstream to listen", watch=[child])
    requests.get(url + "/models", timeout=5).raise_for_status()
    return child, url


def reset_stub(url: str) -> None:
    """Forget the requests the stub recorded (it keeps every one; a long bench would hoard them)."""
    requests.post(url.removesuffix("/v1") + "/_stub/reset", json={}, timeout=5).raise_for_status()
