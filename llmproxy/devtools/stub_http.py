"""The stub upstream's HTTP side: the handler (OpenAI, Mistral and Anthropic dialects, control routes), the server."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from llmproxy.devtools import stub_anthropic, stub_openai_responses
from llmproxy.devtools.stub_bodies import completion_body, model_list, stream_chunks, tool_calls_of
from llmproxy.devtools.stub_embeddings import MISTRAL_EMBEDDING_FIELDS, embeddings_body
from llmproxy.devtools.stub_responses import (
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
    error_body,
    fixed_answer,
    openai_error,
)
from llmproxy.jsontypes import JSON

PAUSE_LIMIT_SECONDS = 120.0  # a paused stream goes on by itself after this
KEEPALIVE_SECONDS = 0.5
KEEPALIVE = b": paused\n\n"


class StubState(Protocol):
    """What the handler needs of the stub (`StubUpstream` is it): its scripts, records and clock."""

    latency: float

    @property
    def requests(self) -> list[JSON]: ...
    @property
    def disconnects(self) -> list[JSON]: ...
    def script(self, model: str, *behaviours: Behaviour) -> None: ...
    def reset(self) -> None: ...
    def _record(self, method: str, path: str, headers: Any, body: Any, client: str) -> None: ...
    def _record_disconnect(self, path: str, model: str, chunks_sent: int) -> None: ...
    def _next_behaviour(self, model: str) -> Behaviour: ...
    def _scripted_models(self) -> set[str]: ...
    def _sleep(self, seconds: float) -> None: ...
    def _wait_resumed(self, seconds: float) -> bool: ...


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the real APIs
    disable_nagle_algorithm = True  # small SSE writes must leave at once, not after 40 ms
    timeout = 300  # idle keep-alive connections are closed eventually
    server: StubServer

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

    def _send_json(self, status: int, obj: Any, headers: JSON | None = None) -> None:
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
        if path.startswith("/anthropic/"):
            self._anthropic(method, path[len("/anthropic") :], body)
            return
        if path == "/v1/models" and method == "GET":
            stub._record(method, self.path, self.headers, None, self._client())
            self._send_json(200, model_list(sorted(set(KNOWN_MODELS) | stub._scripted_models())))
            return
        if path not in ("/v1/chat/completions", "/v1/embeddings", "/v1/responses") or method != "POST":
            self._send_json(404, error_body(404, dialect, f"No route {method} {path}", "not_found"))
            return
        stub._record(method, self.path, self.headers, None if body is INVALID_BODY else body, self._client())
        if body is INVALID_BODY or not isinstance(body, dict):
            self._send_json(400, error_body(400, dialect, "We could not parse the JSON body.", "invalid_json"))
            return
        embeddings = path == "/v1/embeddings"
        auth = self.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else ""
        fixed = fixed_answer(body, token, dialect, MISTRAL_EMBEDDING_FIELDS if embeddings else MISTRAL_FIELDS)
        if fixed is not None:
            self._send_json(*fixed)
            return
        behaviour = self._delay_or_fail(body, lambda status: error_body(status, dialect), "Retry-After")
        if behaviour is not None and embeddings:
            self._send_json(200, embeddings_body(body, behaviour))
        elif behaviour is not None and path == "/v1/responses":
            response, payloads = stub_openai_responses.answer(body, behaviour)
            if body.get("stream"):
                self._stream(str(body.get("model")), behaviour, payloads)
            else:
                self._send_json(200, response)
        elif behaviour is not None:
            self._chat(body, dialect, behaviour)

    def _chat(self, body: JSON, dialect: str, behaviour: Behaviour) -> None:
        model = str(body.get("model", ""))
        content, finish, usage = answer_for(body, behaviour)
        calls = tool_calls_of(behaviour)
        if body.get("stream"):
            events = stream_chunks(body, model, content, finish, usage, dialect, tool_calls=calls)
            payloads = [b"data: " + json.dumps(e).encode() + b"\n\n" for e in events]
            self._stream(model, behaviour, [*payloads, b"data: [DONE]\n\n"])
        else:
            self._send_json(200, completion_body(model, content, finish, usage, dialect, tool_calls=calls))

    def _anthropic(self, method: str, path: str, body: Any) -> None:
        """POST /v1/messages in Anthropic's dialect: its key header, checks, answers and events."""
        stub = self.server.stub
        if path != "/v1/messages" or method != "POST":
            self._send_json(404, stub_anthropic.error(404, f"No route {method} {path}"))
            return
        stub._record(method, self.path, self.headers, None if body is INVALID_BODY else body, self._client())
        if body is INVALID_BODY or not isinstance(body, dict):
            self._send_json(400, stub_anthropic.error(400, "There was an issue with the JSON body."))
            return
        fixed = stub_anthropic.fixed_answer(body, self.headers.get("x-api-key", ""))
        if fixed is not None:
            self._send_json(*fixed)
            return
        model = str(body.get("model", ""))
        behaviour = self._delay_or_fail(body, stub_anthropic.error, "retry-after")
        if behaviour is None:
            return
        content, finish, usage = answer_for(body, behaviour)
        calls = tool_calls_of(behaviour)
        cache = (behaviour.cache_read_tokens, behaviour.cache_write_tokens) if isinstance(behaviour, Ok) else (0, 0)
        if body.get("stream"):
            payloads = stub_anthropic.stream_payloads(model, content, finish, usage, calls, cache)
            self._stream(model, behaviour, payloads)
        else:
            self._send_json(200, stub_anthropic.message_body(model, content, finish, usage, calls, cache))

    def _delay_or_fail(self, body: JSON, error_for: Callable[[int], JSON], retry_after_header: str) -> Behaviour | None:
        """The next scripted behaviour for the body's model, after its delay; None when it already answered
        (a scripted failure in this dialect's error shape, or a connection dropped instead of a whole answer)."""
        stub = self.server.stub
        behaviour = stub._next_behaviour(str(body.get("model", "")))
        stub._sleep(stub.latency)
        if isinstance(behaviour, (Hang, Slow)):
            stub._sleep(behaviour.seconds)
        if isinstance(behaviour, Fail):
            headers = dict(behaviour.headers)
            if behaviour.retry_after is not None:
                headers[retry_after_header] = behaviour.retry_after
            self._send_json(behaviour.status, behaviour.body or error_for(behaviour.status), headers)
            return None
        if isinstance(behaviour, BreakStream) and not body.get("stream"):
            self._abort()
            return None
        return behaviour

    def _stream(self, model: str, behaviour: Behaviour, payloads: list[bytes]) -> None:
        stub = self.server.stub
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        delay = behaviour.chunk_delay if isinstance(behaviour, Ok) else 0.0
        cut = behaviour.after_chunks if isinstance(behaviour, BreakStream) else None
        malformed = isinstance(behaviour, BreakStream) and behaviour.malformed
        pause = behaviour.pause_after if isinstance(behaviour, Ok) else None
        sent = 0
        try:
            for payload in payloads:
                if cut is not None and sent >= cut:
                    if malformed:
                        bad = b'data: {"id": "chatcmpl-broken", "choices": [\n\n'
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(bad), bad))
                    elif isinstance(behaviour, BreakStream) and behaviour.error_type:
                        event = {"type": "error", "error": {"type": behaviour.error_type, "message": "stub error"}}
                        bad = b"event: error\ndata: " + json.dumps(event).encode() + b"\n\n"
                        self.wfile.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(bad), bad))
                        return
                    self._abort()
                    return
                if delay and sent:
                    stub._sleep(delay)
                if pause is not None and sent == pause:
                    self._hold(stub)
                # One HTTP chunk per SSE event, so clients see each event as it is written.
                self.wfile.write(b"%x\r\n%s\r\n" % (len(payload), payload))
                sent += 1
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            self.close_connection = True
            stub._record_disconnect(self.path, model, sent)

    def _hold(self, stub: StubState) -> None:
        # Paused until the test resumes the stub: an SSE comment every so often keeps the stream from
        # looking idle to the client's read timeout, as real servers do. Bounded, so a test that fails
        # before resuming leaves no handler behind for good.
        deadline = time.monotonic() + PAUSE_LIMIT_SECONDS
        while not stub._wait_resumed(KEEPALIVE_SECONDS) and time.monotonic() < deadline:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(KEEPALIVE), KEEPALIVE))

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


class StubServer(ThreadingHTTPServer):
    """A threaded HTTP/1.1 server that remembers its open connections (so `stop()` can cut them)."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256  # a benchmark opens many connections at once

    def __init__(self, address: tuple[str, int], stub: StubState) -> None:
        self.stub = stub
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that go away mid-response are part of the tests, not errors.
        pass
