"""A real OpenAI-compatible upstream on loopback, for the tests and the benchmark.

In-process::

    with StubUpstream() as stub:
        stub.script("gpt-4o-mini", Fail(429, retry_after=1), Ok(content="hi"))
        ...  # point a provider's api_base at stub.url (or stub.mistral_url)
        stub.requests  # what it received: [{"method", "path", "headers", "body"}]
        stub.limit_rpm("up-a", 60)  # a provider's rate limit: the 61st call in any 60 s gets 429

In another process: ``python -m llmproxy.devtools.stub_upstream --port 9100 --latency-ms 50``
prints its URL and serves until killed; drive it through its ``/_stub/*`` control routes
(``bench/stub.py`` does).

Fixed rules, whatever the script says: a Bearer token starting with "bad" or "invalid"
gets 401 invalid_api_key (the message echoes the key in full, like a careless upstream,
so tests can prove the proxy scrubs it); a model starting with "missing" gets 404
model_not_found. No Authorization header at all is accepted (an auth-less local server).

Under ``/mistral/v1`` the stub speaks Mistral's dialect: unknown request fields get 422,
usage rides on the final stream chunk (no stream_options), errors use Mistral's flat shape.
``POST /v1/embeddings`` (both dialects) answers deterministic vectors: see stub_embeddings.py.
Under ``/anthropic`` it speaks Anthropic's Messages API (``POST /anthropic/v1/messages``, key in
``x-api-key``): see stub_anthropic.py.
"""

from __future__ import annotations

import argparse
import math
import socket
import threading
import time
from collections import deque
from typing import Any

from llmproxy.devtools.stub_http import StubServer
from llmproxy.devtools.stub_responses import Behaviour, Fail, Ok
from llmproxy.jsontypes import JSON


class StubUpstream:
    """A threaded HTTP/1.1 OpenAI-compatible server on loopback with scripted behaviours."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, latency: float = 0.0) -> None:
        self.host, self.port = host, port
        self.latency = latency
        self._initial_latency = latency
        self._lock = threading.Lock()
        self._scripts: dict[str, deque[Behaviour]] = {}
        self._requests: deque[JSON] = deque(maxlen=100_000)
        self._disconnects: list[JSON] = []
        self._rpm: dict[str, int] = {}  # model -> requests it answers in any 60 s; beyond them, 429
        self._answered: dict[str, deque[float]] = {}  # model -> when it answered (within the last 60 s)
        self.rate_limited = 0  # 429s given for a model's RPM limit since the last reset
        self._stopping = threading.Event()
        self._resumed = threading.Event()
        self._server: StubServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> StubUpstream:
        """Bind and serve in a background thread; returns self."""
        self._server = StubServer((self.host, self.port), self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.01},
            name=f"stub-upstream-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake sleeping handlers and drop every open connection."""
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        with self._server.connections_lock:
            open_connections = list(self._server.connections)
        for conn in open_connections:
            # Pooled keep-alive connections would otherwise still be served after stop().
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None

    def __enter__(self) -> StubUpstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """http://host:port, without a path."""
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The OpenAI-style api_base, e.g. http://127.0.0.1:PORT/v1."""
        return self.base_url + "/v1"

    @property
    def mistral_url(self) -> str:
        """The api_base of the Mistral dialect."""
        return self.base_url + "/mistral/v1"

    @property
    def anthropic_url(self) -> str:
        """The api_base of the Anthropic dialect (the URL before /v1/messages)."""
        return self.base_url + "/anthropic"

    # -- scripting and inspection -----------------------------------------

    def script(self, model: str, *behaviours: Behaviour) -> None:
        """Queue behaviours for the next calls to `model` (FIFO; then plain success)."""
        with self._lock:
            self._scripts.setdefault(model, deque()).extend(behaviours)

    def limit_rpm(self, model: str, rpm: int) -> None:
        """Answer `model` at most `rpm` times in any rolling 60 s, as a provider's rate limit does; 429 beyond."""
        with self._lock:
            self._rpm[model] = rpm

    def reset(self) -> None:
        """Forget scripts, RPM limits, received requests and disconnects; latency back to its start value."""
        with self._lock:
            self._rpm.clear()
            self._answered.clear()
            self.rate_limited = 0
            self._scripts.clear()
            self._requests.clear()
            self._disconnects.clear()
        self._resumed.clear()
        self.latency = self._initial_latency

    def resume(self) -> None:
        """Let every stream paused by Ok(pause_after=...) go on, and later ones not pause (until `reset`)."""
        self._resumed.set()

    @property
    def requests(self) -> list[JSON]:
        """A snapshot of the received requests: {"method", "path", "headers", "body", "client"}."""
        with self._lock:
            return list(self._requests)

    @property
    def disconnects(self) -> list[JSON]:
        """Streams the client abandoned: {"path", "model", "chunks_sent"}."""
        with self._lock:
            return list(self._disconnects)

    def chat_bodies(self, model: str | None = None) -> list[JSON]:
        """The JSON bodies of the chat requests received (for `model` if given)."""
        return [
            r["body"]
            for r in self.requests
            if isinstance(r["body"], dict) and (model is None or r["body"].get("model") == model)
        ]

    # -- used by the handler ----------------------------------------------

    def _record(self, method: str, path: str, headers: Any, body: Any, client: str) -> None:
        entry = {"method": method, "path": path, "headers": dict(headers.items()), "body": body, "client": client}
        with self._lock:
            self._requests.append(entry)

    def _record_disconnect(self, path: str, model: str, chunks_sent: int) -> None:
        with self._lock:
            self._disconnects.append({"path": path, "model": model, "chunks_sent": chunks_sent})

    def _next_behaviour(self, model: str) -> Behaviour:
        with self._lock:
            limit = self._rpm.get(model)
            if limit is not None:
                now, answered = time.monotonic(), self._answered.setdefault(model, deque())
                while answered and answered[0] <= now - 60:
                    answered.popleft()
                if len(answered) >= limit:
                    self.rate_limited += 1
                    return Fail(429, retry_after=max(1, math.ceil(answered[0] + 60 - now)))
                answered.append(now)
            queue = self._scripts.get(model)
            return queue.popleft() if queue else Ok()

    def _scripted_models(self) -> set[str]:
        with self._lock:
            return set(self._scripts)

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)  # wakes at once when the stub stops

    def _wait_resumed(self, seconds: float) -> bool:
        return self._resumed.wait(seconds) or self._stopping.is_set()


def main(argv: list[str] | None = None) -> None:
    """Serve a stub until killed; print its URL once listening."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args(argv)
    stub = StubUpstream(args.host, args.port, latency=args.latency_ms / 1000.0).start()
    print(stub.url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        stub.stop()


if __name__ == "__main__":
    main()
