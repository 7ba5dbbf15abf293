"""A closed-loop load generator: N threads, each with its own keep-alive `requests.Session`.

Every thread first sends a few warm-up requests (connections open, caches fill), then all
threads start together and take requests from one shared budget until it is spent. Sync
requests are timed to the last byte of the body; streams to the first `data:` line whose
delta carries content (time to first token) and to `data: [DONE]`.
"""
from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import requests

MODEL = "gpt-3.5-turbo"
PROMPT = "Say hello to the benchmark in a few short words please"
TIMEOUTS = (5.0, 60.0)  # connect, read


def request_body(*, stream: bool) -> bytes:
    """The chat completion sent to the stub and to the proxy alike."""
    body = {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 32}
    if stream:
        body["stream"] = True
    return json.dumps(body).encode()


def percentile(sorted_values: list[float], q: float) -> float | None:
    """The q-th percentile (0..100) by linear interpolation between closest ranks."""
    if not sorted_values:
        return None
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


@dataclass
class Distribution:
    """Summary of a set of durations, in milliseconds."""

    p50: float | None
    p90: float | None
    p99: float | None
    mean: float | None
    min: float | None
    max: float | None

    @classmethod
    def of(cls, seconds: list[float]) -> "Distribution":
        ms = sorted(s * 1000.0 for s in seconds)
        if not ms:
            return cls(None, None, None, None, None, None)
        return cls(percentile(ms, 50), percentile(ms, 90), percentile(ms, 99), sum(ms) / len(ms), ms[0], ms[-1])


@dataclass
class LevelResult:
    """What one (mode, concurrency) level measured."""

    mode: str  # "sync" or "stream"
    concurrency: int
    requests: int  # measured requests that succeeded
    errors: int
    duration_s: float
    throughput_rps: float
    latency_ms: Distribution  # whole response (streams: until [DONE])
    ttft_ms: Distribution | None = None  # streams only
    error_samples: list[str] = field(default_factory=list)
    cpu: dict | None = None  # filled in by the caller (bench.cpu), per measured request

    def as_dict(self) -> dict:
        return asdict(self)


class RequestFailed(Exception):
    """A response that was not a success."""


def _has_content(payload: bytes) -> bool:
    try:
        event = json.loads(payload)
    except ValueError:
        return False
    for choice in event.get("choices") or ():
        if (choice.get("delta") or {}).get("content"):
            return True
    return False


def _sync_call(session: requests.Session, url: str, body: bytes) -> float | None:
    resp = session.post(url, data=body, timeout=TIMEOUTS)
    if resp.status_code != 200 or not resp.content:
        raise RequestFailed(f"HTTP {resp.status_code}: {resp.text[:200]}")
    return None


def _stream_call(session: requests.Session, url: str, body: bytes) -> float | None:
    """Read the whole stream; return the time to the first content-bearing `data:` line (perf_counter)."""
    first: float | None = None
    done = False
    with session.post(url, data=body, timeout=TIMEOUTS, stream=True) as resp:
        if resp.status_code != 200:
            raise RequestFailed(f"HTTP {resp.status_code}: {resp.text[:200]}")
        buffer = b""
        # chunk_size=None: hand over each piece as the socket delivers it (no 512-byte batching).
        for piece in resp.iter_content(chunk_size=None):
            buffer += piece
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                if not line.startswith(b"data:"):
                    continue
                payload = line[5:].strip()
                if payload == b"[DONE]":
                    done = True
                elif first is None and _has_content(payload):
                    first = time.perf_counter()
    if not done:
        raise RequestFailed("stream ended without data: [DONE]")
    if first is None:
        raise RequestFailed("stream carried no content")
    return first


def run_level(base_url: str, api_key: str, *, stream: bool, concurrency: int, requests_per_thread: int,
              warmup_per_thread: int, stop: threading.Event | None = None,
              on_start: Callable[[], None] | None = None) -> LevelResult:
    """Run one level: `concurrency` threads share `concurrency * requests_per_thread` measured requests.

    `on_start` is called as the measured phase begins (after every thread's warm-up).
    """
    url = base_url.rstrip("/") + "/chat/completions"
    body = request_body(stream=stream)
    call = _stream_call if stream else _sync_call
    total = concurrency * requests_per_thread
    budget = itertools.count()
    budget_lock = threading.Lock()
    stop = stop or threading.Event()
    start = threading.Barrier(concurrency + 1)
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    ttfts: list[list[float]] = [[] for _ in range(concurrency)]
    last_end = [0.0] * concurrency
    errors: list[str] = []

    def client(i: int) -> None:
        session = requests.Session()
        session.headers.update({"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"})
        try:
            try:
                for _ in range(warmup_per_thread):
                    if stop.is_set():
                        break
                    try:
                        call(session, url, body)
                    except (requests.RequestException, RequestFailed):
                        pass  # warm-up failures do not count; the measured phase will show them
            finally:
                start.wait()
            while not stop.is_set():
                with budget_lock:
                    n = next(budget)
                if n >= total:
                    break
                t0 = time.perf_counter()
                try:
                    first = call(session, url, body)
                except (requests.RequestException, RequestFailed) as exc:
                    errors.append(f"{type(exc).__name__}: {exc}"[:300])
                    continue
                end = time.perf_counter()
                latencies[i].append(end - t0)
                if first is not None:
                    ttfts[i].append(first - t0)
                last_end[i] = end
        except threading.BrokenBarrierError:
            pass
        finally:
            session.close()

    threads = [threading.Thread(target=client, args=(i,), name=f"load-{i}", daemon=True) for i in range(concurrency)]
    for t in threads:
        t.start()
    try:
        start.wait()
        began = time.perf_counter()
        if on_start is not None:
            on_start()
        for t in threads:
            while t.is_alive():  # a timed join keeps Ctrl-C responsive
                t.join(0.2)
    except BaseException:
        stop.set()
        start.abort()
        raise
    ended = max([began, *last_end])
    all_latencies = [x for per in latencies for x in per]
    duration = max(ended - began, 1e-9)
    return LevelResult(
        mode="stream" if stream else "sync", concurrency=concurrency, requests=len(all_latencies),
        errors=len(errors), duration_s=round(duration, 3), throughput_rps=len(all_latencies) / duration,
        latency_ms=Distribution.of(all_latencies),
        ttft_ms=Distribution.of([x for per in ttfts for x in per]) if stream else None,
        error_samples=sorted(set(errors))[:5])
