"""The stub upstream (llmproxy/devtools/stub_upstream.py) in its own process, with a set latency,
and RemoteStub to drive it there through its /_stub/* control routes."""

from __future__ import annotations

import re

import requests

from bench.processes import PYTHON, Child, ProcessSet, wait_for
from llmproxy.devtools.stub_responses import Behaviour, behaviour_to_dict

_URL = re.compile(r"^(http://\S+/v1)\s*$", re.MULTILINE)


def start_stub(procs: ProcessSet, *, latency_ms: float, timeout: float = 30.0) -> tuple[Child, str]:
    """Start the stub on a free loopback port; return it and its OpenAI-style base URL (…/v1)."""
    child = procs.start(
        "stub",
        [
            PYTHON,
            "-u",
            "-m",
            "llmproxy.devtools.stub_upstream",
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
    RemoteStub(url).reset()


class RemoteStub:
    """Drive a stub running in another process through its /_stub/* routes."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/").removesuffix("/v1")
        self._session = requests.Session()

    def script(self, model: str, *behaviours: Behaviour) -> None:
        """Queue behaviours for the next calls to `model`."""
        self._post("/_stub/script", {"model": model, "behaviours": [behaviour_to_dict(b) for b in behaviours]})

    def set_latency(self, seconds: float) -> None:
        """Set the latency added to every call."""
        self._post("/_stub/latency", {"seconds": seconds})

    def reset(self) -> None:
        """Forget scripts and received requests."""
        self._post("/_stub/reset", {})

    @property
    def requests(self) -> list[dict]:
        """The received requests."""
        return self._get()["requests"]

    @property
    def disconnects(self) -> list[dict]:
        """Streams the client abandoned."""
        return self._get()["disconnects"]

    def _get(self) -> dict:
        resp = self._session.get(self.base_url + "/_stub/requests", timeout=10)
        resp.raise_for_status()
        return resp.json()

    def _post(self, path: str, body: dict) -> None:
        self._session.post(self.base_url + path, json=body, timeout=10).raise_for_status()
