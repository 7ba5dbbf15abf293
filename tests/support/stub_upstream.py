"""A real OpenAI-compatible upstream on loopback, for the tests and the benchmark.

In-process::

    with StubUpstream() as stub:
        stub.script("gpt-4o-mini", Fail(429, retry_after=1), Ok(content="hi"))
        ...  # point a provider's api_base at stub.url (or stub.mistral_url)
        stub.requests  # what it received: [{"method", "path", "headers", "body"}]

In another process: ``python -m tests.support.stub_upstream --port 9100 --latency-ms 50``
prints its URL and serves until killed; drive it with :class:`RemoteStub` (the
``/_stub/*`` control routes).

Fixed rules, whatever the script says: a Bearer token starting with "bad" or "invalid"
gets 401 invalid_api_key (the message echoes the key in full, like a careless upstream,
so tests can prove the proxy scrubs it); a model starting with "missing" gets 404
model_not_found. No Authorization header at all is accepted (an auth-less local server).

Under ``/mistral/v1`` the stub speaks Mistral's dialect: unknown request fields get 422,
usage rides on the final stream chunk (no stream_options), errors use Mistral's flat shape.
"""

from __future__ import annotations

import argparse
import json
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests as http

from tests.support.stub_responses import (
    INVALID_BODY,
    KNOWN_MODELS,
    MISTRAL_FIELDS,
    Behaviour,
    BreakStream,
    Fail,
    Hang,
    Ok,
    Slow,
    answer_for,
    behaviour_from_dict,
    behaviour_to_dict,
    completion_body,
    error_body,
    openai_error,
    stream_chunks,
)

# ---------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the real APIs
    disable_nagle_algorithm = True  # small SSE writes must leave at once, not after 40 ms
    timeout = 300  # idle keep-alive connections are closed eventually
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # a benchmark's worth of access lines is noise

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    # -- plumbing ----------------------------------------------------------

    def _read_json(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return INVALID_BODY

    def _send_json(self, status: int, obj: Any, headers: dict | None = None) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-request-id", "req_" + uuid.uuid4().hex[:16])
        for key, value in (headers or {}).items():
            self.send_header(key, str(value))
        self.end_headers()
        self.wfile.write(data)

    def _client(self) -> str:
        """host:port of the client; the same port twice means a reused keep-alive connection."""
        return "{}:{}".format(*self.client_address[:2])

    def _abort(self) -> None:
        """Drop the connection without finishing the response."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # -- routes ------------------------------------------------------------

    def _route(self, method: str) -> None:
        stub = self.server.stub
        path = self.path.split("?", 1)[0]
        if path.startswith("/_stub/"):
            self._control(method, path)
            return
        dialect = "openai"
        if path.startswith("/mistral/"):
            dialect, path = "mistral", path[len("/mistral") :]
        body = self._read_json() if method == "POST" else None
        if path == "/v1/models" and method == "GET":
            stub._record(method, self.path, self.headers, None, self._client())
            models = sorted(set(KNOWN_MODELS) | stub._scripted_models())
            self._send_json(
                200,
                {
                    "object": "list",
                    "data": [{"id": m, "object": "model", "created": 1700000000, "owned_by": "stub"} for m in models],
                },
            )
            return
        if path != "/v1/chat/completions" or method != "POST":
            self._send_json(404, error_body(404, dialect, f"No route {method} {path}", "not_found"))
            return
        stub._record(method, self.path, self.headers, None if body is INVALID_BODY else body, self._client())
        if body is INVALID_BODY or not isinstance(body, dict):
            self._send_json(400, error_body(400, dialect, "We could not parse the JSON body.", "invalid_json"))
            return
        self._chat(body, dialect)

    def _chat(self, body: dict, dialect: str) -> None:
        stub = self.server.stub
        model = str(body.get("model", ""))
        auth = self.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else ""
        if token.startswith(("bad", "invalid")):
            if dialect == "mistral":
                self._send_json(401, {"message": "Unauthorized", "request_id": uuid.uuid4().hex})
            else:
                self._send_json(
                    401, error_body(401, dialect, f"Incorrect API key provided: {token}.", "invalid_api_key")
                )
            return
        if model.startswith("missing"):
            self._send_json(404, error_body(404, dialect, f"The model `{model}` does not exist.", "model_not_found"))
            return
        if dialect == "mistral":
            extra = sorted(set(body) - MISTRAL_FIELDS)
            if extra:
                self._send_json(
                    422,
                    {
                        "object": "error",
                        "message": {
                            "detail": [
                                {
                                    "type": "extra_forbidden",
                                    "loc": ["body", k],
                                    "msg": "Extra inputs are not permitted",
                                    "input": body[k],
                                }
                                for k in extra
                            ]
                        },
                        "type": "invalid_request_error",
                        "param": None,
                        "code": None,
                    },
                )
                return

        behaviour = stub._next_behaviour(model)
        stub._sleep(stub.latency)
        if isinstance(behaviour, (Hang, Slow)):
            stub._sleep(behaviour.seconds)
        if isinstance(behaviour, Fail):
            headers = dict(behaviour.headers)
            if behaviour.retry_after is not None:
                headers["Retry-After"] = behaviour.retry_after
            self._send_json(behaviour.status, behaviour.body or error_body(behaviour.status, dialect), headers)
            return
        if isinstance(behaviour, BreakStream) and not body.get("stream"):
            self._abort()
            return
        content, finish, usage = answer_for(body, behaviour)
        if body.get("stream"):
            self._stream(body, model, behaviour, stream_chunks(body, model, content, finish, usage, dialect))
        else:
            self._send_json(200, completion_body(model, content, finish, usage, dialect))

    def _stream(self, body: dict, model: str, behaviour: Behaviour, events: list[dict]) -> None:
        stub = self.server.stub
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        delay = behaviour.chunk_delay if isinstance(behaviour, Ok) else 0.0
        cut = behaviour.after_chunks if isinstance(behaviour, BreakStream) else None
        payloads = [b"data: " + json.dumps(e).encode() + b"\n\n" for e in events]
        payloads.append(b"data: [DONE]\n\n")
        sent = 0
        try:
            for payload in payloads:
                if cut is not None and sent >= cut:
                    if behaviour.malformed:
                        bad = b'data: {"id": "chatcmpl-broken", "choices": [\n\n'
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(bad), bad))
                    self._abort()
                    return
                if delay and sent:
                    stub._sleep(delay)
                # One HTTP chunk per SSE event, so clients see each event as it is written.
                self.wfile.write(b"%x\r\n%s\r\n" % (len(payload), payload))
                sent += 1
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            self.close_connection = True
            stub._record_disconnect(self.path, model, sent)

    def _control(self, method: str, path: str) -> None:
        stub = self.server.stub
        body = self._read_json() if method == "POST" else None
        body = body if isinstance(body, dict) else {}
        if (method, path) == ("POST", "/_stub/script"):
            behaviours = [behaviour_from_dict(b) for b in body.get("behaviours", [])]
            stub.script(body["model"], *behaviours)
        elif (method, path) == ("POST", "/_stub/latency"):
            stub.latency = float(body.get("seconds", 0))
        elif (method, path) == ("POST", "/_stub/reset"):
            stub.reset()
        elif (method, path) == ("GET", "/_stub/requests"):
            self._send_json(200, {"requests": stub.requests, "disconnects": stub.disconnects})
            return
        else:
            self._send_json(404, openai_error(f"No route {method} {path}", "invalid_request_error", "not_found"))
            return
        self._send_json(200, {"ok": True})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256  # a benchmark opens many connections at once

    def __init__(self, address: tuple[str, int], stub: StubUpstream) -> None:
        self.stub = stub
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request, client_address) -> None:
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request, client_address) -> None:
        # Clients that go away mid-response are part of the tests, not errors.
        pass


class StubUpstream:
    """A threaded HTTP/1.1 OpenAI-compatible server on loopback with scripted behaviours."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, latency: float = 0.0) -> None:
        self.host, self.port = host, port
        self.latency = latency
        self._initial_latency = latency
        self._lock = threading.Lock()
        self._scripts: dict[str, deque[Behaviour]] = {}
        self._requests: deque[dict] = deque(maxlen=100_000)
        self._disconnects: list[dict] = []
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> StubUpstream:
        """Bind and serve in a background thread; returns self."""
        self._server = _Server((self.host, self.port), self)
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

    # -- scripting and inspection -----------------------------------------

    def script(self, model: str, *behaviours: Behaviour) -> None:
        """Queue behaviours for the next calls to `model` (FIFO; then plain success)."""
        with self._lock:
            self._scripts.setdefault(model, deque()).extend(behaviours)

    def reset(self) -> None:
        """Forget scripts, received requests and disconnects; latency back to its start value."""
        with self._lock:
            self._scripts.clear()
            self._requests.clear()
            self._disconnects.clear()
        self.latency = self._initial_latency

    @property
    def requests(self) -> list[dict]:
        """A snapshot of the received requests: {"method", "path", "headers", "body", "client"}."""
        with self._lock:
            return list(self._requests)

    @property
    def disconnects(self) -> list[dict]:
        """Streams the client abandoned: {"path", "model", "chunks_sent"}."""
        with self._lock:
            return list(self._disconnects)

    def chat_bodies(self, model: str | None = None) -> list[dict]:
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
            queue = self._scripts.get(model)
            return queue.popleft() if queue else Ok()

    def _scripted_models(self) -> set[str]:
        with self._lock:
            return set(self._scripts)

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)  # wakes at once when the stub stops


class RemoteStub:
    """Drive a stub running in another process through its /_stub/* routes."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/").removesuffix("/v1")
        self._session = http.Session()

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


def wait_until(predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.01) -> Any:
    """Poll `predicate` until it returns something truthy; AssertionError after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


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
