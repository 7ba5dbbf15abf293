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
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

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
    def of(cls, seconds: list[float]) -> Distribution:
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
    # Failed measured requests by HTTP status ("429", "502", …) or exception name ("ReadTimeout").
    error_statuses: dict[str, int] = field(default_factory=dict)
    latencies_s: list[float] = field(default_factory=list, repr=False)  # raw samples (not in the JSON)

    def as_dict(self) -> dict:
        data = asdict(self)
        data.pop("latencies_s")
        return data


def merge_results(parts: list[LevelResult]) -> LevelResult:
    """One result from several sync runs of the same level, e.g. the halves of an A-B-B-A order.

    Latency percentiles come from the pooled samples; throughput is requests over the summed measured time;
    CPU per request is the request-weighted mean, machine busy the time-weighted mean.
    """
    first = parts[0]
    if first.mode != "sync":
        raise ValueError("merge_results keeps no TTFT samples: sync levels only")
    samples = [x for p in parts for x in p.latencies_s]
    requests = sum(p.requests for p in parts)
    duration = sum(p.duration_s for p in parts)
    statuses: Counter = Counter()
    for p in parts:
        statuses.update(p.error_statuses)
    cpu = None
    with_cpu = [p for p in parts if p.cpu and p.requests]
    if with_cpu and len(with_cpu) == len(parts):
        names = sorted({k for p in with_cpu for k in p.cpu["cpu_ms_per_request"]})
        cpu = {
            "cpu_ms_per_request": {
                k: round(
                    sum(p.cpu["cpu_ms_per_request"].get(k, 0.0) * p.requests for p in with_cpu) / max(1, requests), 3
                )
                for k in names
            },
            "machine_busy_pct": round(
                sum((p.cpu["machine_busy_pct"] or 0.0) * p.duration_s for p in with_cpu) / max(duration, 1e-9), 1
            ),
        }
    return LevelResult(
        mode=first.mode,
        concurrency=first.concurrency,
        requests=requests,
        errors=sum(p.errors for p in parts),
        duration_s=round(duration, 3),
        throughput_rps=requests / max(duration, 1e-9),
        latency_ms=Distribution.of(samples),
        error_samples=sorted({e for p in parts for e in p.error_samples})[:5],
        cpu=cpu,
        error_statuses=dict(statuses),
        latencies_s=samples,
    )


class RequestFailed(Exception):
    """A response that was not a success (`status`: its HTTP status, None when it was not an HTTP error)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def _has_content(payload: bytes) -> bool:
    try:
        event = json.loads(payload)
    except ValueError:
        return False
    return any((choice.get("delta") or {}).get("content") for choice in event.get("choices") or ())


def _sync_call(session: requests.Session, url: str, body: bytes) -> float | None:
    resp = session.post(url, data=body, timeout=TIMEOUTS)
    if resp.status_code != 200 or not resp.content:
        raise RequestFailed(f"HTTP {resp.status_code}: {resp.text[:200]}", resp.status_code)
    return None


def _stream_call(session: requests.Session, url: str, body: bytes) -> float | None:
    """Read the whole stream; return the time to the first content-bearing `data:` line (perf_counter)."""
    first: float | None = None
    done = False
    with session.post(url, data=body, timeout=TIMEOUTS, stream=True) as resp:
        if resp.status_code != 200:
            raise RequestFailed(f"HTTP {resp.status_code}: {resp.text[:200]}", resp.status_code)
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


def run_level(
    base_url: str,
    api_key: str,
    *,
    stream: bool,
    concurrency: int,
    requests_per_thread: int,
    warmup_per_thread: int,
    stop: threading.Event | None = None,
    on_start: Callable[[], None] | None = None,
    think_s: float = 0.0,
) -> LevelResult:
    """Run one level: `concurrency` threads share `concurrency * requests_per_thread` measured requests.

    `on_start` is called as the measured phase begins (after every thread's warm-up). Setting `stop`
    ends the level early (after the requests in flight). `think_s` is a pause after each request
    (a light probe rather than a closed loop flat out); it is not part of any latency.
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
    statuses: Counter = Counter()

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
                    status = getattr(exc, "status", None)
                    with budget_lock:
                        statuses[str(status) if status is not None else type(exc).__name__] += 1
                    last_end[i] = time.perf_counter()
                    if think_s:
                        stop.wait(think_s)
                    continue
                end = time.perf_counter()
                latencies[i].append(end - t0)
                if first is not None:
                    ttfts[i].append(first - t0)
                last_end[i] = end
                if think_s:
                    stop.wait(think_s)
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
        mode="stream" if stream else "sync",
        concurrency=concurrency,
        requests=len(all_latencies),
        errors=len(errors),
        duration_s=round(duration, 3),
        throughput_rps=len(all_latencies) / duration,
        latency_ms=Distribution.of(all_latencies),
        ttft_ms=Distribution.of([x for per in ttfts for x in per]) if stream else None,
        error_samples=sorted(set(errors))[:5],
        error_statuses=dict(statuses),
        latencies_s=all_latencies,
    )
