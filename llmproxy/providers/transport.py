"""The HTTP/SSE transport every adapter shares: a pooled session, server-sent events, draining."""

from __future__ import annotations

import http.cookiejar
import urllib.request
from collections.abc import Iterator

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter

# What a call can raise below the taxonomy; adapters map these with error_from_exception.
TRANSPORT_ERRORS = (requests.RequestException, urllib3.exceptions.HTTPError, OSError)


def new_session() -> requests.Session:
    """A pooled keep-alive session with library retries off (routing owns retries)."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=32, pool_maxsize=64, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    # The session is shared by every tenant; an upstream's cookies must not leak between them.
    session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    session.headers["User-Agent"] = "llmproxy/1"
    # With trust_env, requests reads the proxy variables and ~/.netrc on every call (measured: a twentieth
    # of a worker's CPU per request). Keep it only where a proxy is configured, so HTTPS_PROXY and NO_PROXY
    # still work as requests documents them.
    session.trust_env = bool(urllib.request.getproxies())
    return session


def _iter_body(resp: requests.Response) -> Iterator[bytes]:
    """Yield body bytes as soon as they arrive, whatever the framing."""
    if resp.raw.chunked:
        # Reads chunk by chunk and marks the body consumed, so the connection is pooled again.
        yield from resp.iter_content(chunk_size=None)
        return
    # Length- or close-delimited streams: read1 returns whatever is there without filling a buffer.
    while True:
        data = resp.raw.read1(65536)
        if not data:
            return
        yield data


def iter_sse_data(resp: requests.Response) -> Iterator[str]:
    """Yield the `data` payload of each server-sent event in order; other fields are skipped."""
    pending = b""
    data_lines: list[bytes] = []
    for block in _iter_body(resp):
        lines = (pending + block).split(b"\n")
        pending = lines.pop()
        for line in lines:
            line = line.rstrip(b"\r")
            if not line:
                if data_lines:
                    yield b"\n".join(data_lines).decode("utf-8")
                    data_lines = []
                continue
            field, _, value = line.partition(b":")
            if field == b"data":
                data_lines.append(value[1:] if value.startswith(b" ") else value)
    if pending.rstrip(b"\r").startswith(b"data:"):
        data_lines.append(pending.rstrip(b"\r")[5:].lstrip(b" "))
    if data_lines:
        yield b"\n".join(data_lines).decode("utf-8")


def drain(resp: requests.Response, limit: int = 65536, wait: float = 0.5) -> None:
    """Read what little follows [DONE] so the keep-alive connection can go back to the pool."""
    seen = 0
    sock = getattr(getattr(resp.raw, "connection", None), "sock", None)
    try:
        if sock is not None:
            # The end of the body follows [DONE] at once; a server that lingers instead must
            # not hold the caller for a whole read timeout (urllib3 resets it on reuse).
            sock.settimeout(wait)
        for block in _iter_body(resp):
            seen += len(block)
            if seen > limit:
                return
    except TRANSPORT_ERRORS:
        return
