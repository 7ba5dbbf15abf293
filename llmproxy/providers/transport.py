"""The HTTP/SSE transport every adapter shares: pooled keep-alive connections, server-sent events, draining.

urllib3 directly, not `requests` on top of it: requests prepares every call anew (URL and header
objects, hooks, cookie extraction from each response), which was a quarter of a batch worker's
CPU per line and a sixth of an interactive worker's. Nothing of requests was needed here: no
cookies (an upstream's must never pass between tenants), no redirects, no library retries
(routing owns retries); proxies from the environment are honoured as requests would.
"""

from __future__ import annotations

import urllib.parse
import urllib.request
from collections.abc import Iterator

import urllib3
import urllib3.exceptions

# What a call can raise below the taxonomy; adapters map these with error_from_exception.
TRANSPORT_ERRORS = (urllib3.exceptions.HTTPError, OSError)
USER_AGENT = "llmproxy/1"
Response = urllib3.BaseHTTPResponse


class Http:
    """Pooled keep-alive HTTP for one process, shared by every tenant; through the environment's proxy if any.

    HTTP_PROXY / HTTPS_PROXY / NO_PROXY (and their lower-case forms) are read once, when the process starts.
    """

    def __init__(self, *, pools: int = 32, per_host: int = 64) -> None:
        self._pools, self._per_host = pools, per_host
        self._direct = urllib3.PoolManager(num_pools=pools, maxsize=per_host, retries=False)
        self._proxies = urllib.request.getproxies()
        self._via: dict[str, urllib3.ProxyManager] = {}

    def post(
        self, url: str, body: bytes, headers: dict[str, str], *, connect: float, read: float, stream: bool
    ) -> Response:
        """POST and return the response: read whole, or with `stream` as it arrives (then `release()` it)."""
        return self._manager(url).request(
            "POST",
            url,
            body=body,
            headers={"User-Agent": USER_AGENT, **headers},
            timeout=urllib3.Timeout(connect=connect, read=read),
            retries=False,
            redirect=False,
            preload_content=not stream,
        )

    def close(self) -> None:
        """Close every pooled connection."""
        self._direct.clear()
        for manager in self._via.values():
            manager.clear()

    def _manager(self, url: str) -> urllib3.PoolManager:
        if not self._proxies:
            return self._direct
        parts = urllib.parse.urlsplit(url)
        proxy = self._proxies.get(parts.scheme)
        if not proxy or urllib.request.proxy_bypass(parts.hostname or ""):
            return self._direct
        if proxy not in self._via:
            self._via[proxy] = urllib3.ProxyManager(proxy, num_pools=self._pools, maxsize=self._per_host, retries=False)
        return self._via[proxy]


def release(resp: Response) -> None:
    """Done with a response: a body read to its end gives its connection back to the pool; one cut short
    closes it (that is what stops a streaming upstream call)."""
    if not resp.closed:
        resp.close()
    resp.release_conn()


def _iter_body(resp: Response) -> Iterator[bytes]:
    """Yield body bytes as soon as they arrive, whatever the framing."""
    if resp.chunked:
        # Chunk by chunk, each as soon as it is complete.
        yield from resp.read_chunked(decode_content=True)
        return
    # Length- or close-delimited streams: read1 returns whatever is there without filling a buffer.
    while True:
        data = resp.read1(65536)
        if not data:
            return
        yield data


def iter_sse_data(resp: Response) -> Iterator[str]:
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


def drain(resp: Response, limit: int = 65536, wait: float = 0.5) -> None:
    """Read what little follows [DONE] so the keep-alive connection can go back to the pool."""
    seen = 0
    sock = getattr(resp.connection, "sock", None)
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
