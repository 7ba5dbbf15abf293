"""Admission cost (issue 4): what the per-key limit check adds to a synchronous request.

A key with limits makes the web count the prompt's tokens (tiktoken) and run one Redis Lua script
(RPM, TPM and budget reserved at once) before the job is stored, and the worker swap the token
reservation for the real usage when the job ends; a key without limits skips all of it. Both keys
are measured in the same run, through the same proxy, at each concurrency level, and the limits are
generous enough that nothing is refused: every 429 is a failure of the scenario.

Drift (a jobs table that grows, caches that fill) would favour whichever key runs first, so each
level runs in A-B-B-A order (half the requests each time) and each key's halves are pooled.
"""

from __future__ import annotations

from collections.abc import Callable

import requests

from bench.cpu import CpuMeter
from bench.cpu import describe as describe_cpu
from bench.loadgen import MODEL, PROMPT, LevelResult, merge_results, run_level
from bench.processes import BenchError, Child

# Generous limits: far above anything a bench run sends (the README's example command).
LIMITS = {"rpm": 1_000_000, "tpm": 1_000_000_000, "budget_usd": "1000000"}
KEYS = ("none", "limits")  # the key without limits, the key with LIMITS


def check_limited_key(base_url: str, api_key: str) -> dict[str, str]:
    """One request with the limited key: it must succeed and carry OpenAI's x-ratelimit-* headers
    (the proof that it went through the admission path); return those headers."""
    body = {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 32}
    resp = requests.post(
        base_url.rstrip("/") + "/chat/completions",
        json=body,
        timeout=30,
        headers={"Authorization": f"Bearer {api_key}"},
    )
    headers = {k.lower(): v for k, v in resp.headers.items() if k.lower().startswith("x-ratelimit-")}
    if resp.status_code != 200 or "x-ratelimit-limit-requests" not in headers:
        raise BenchError(
            f"the key with limits did not go through admission: HTTP {resp.status_code}, "
            f"rate-limit headers {headers}, {resp.text[:300]}"
        )
    return headers


def usage_requests(base_url: str, api_key: str) -> int | None:
    """The key's request count from GET /api/usage (what the proxy recorded for it)."""
    try:
        resp = requests.get(
            base_url.rstrip("/").removesuffix("/v1") + "/api/usage",
            timeout=10,
            headers={"Authorization": f"Bearer {api_key}"},
        )
        return int(resp.json()["requests"]) if resp.status_code == 200 else None
    except (requests.RequestException, ValueError, KeyError, TypeError):
        return None


def _ms(value: float | None) -> str:
    return "   -    " if value is None else f"{value:6.1f} ms"


def _halves(n: int) -> tuple[int, int]:
    return (n + 1) // 2, n // 2


def warmup_requests(levels: list[int], requests_per_thread: int, warmup_per_thread: int) -> int:
    """How many warm-up requests run_admission sends: every non-empty half, with either key, warms up first."""
    parts = 2 * sum(1 for n in _halves(requests_per_thread) if n > 0)
    return sum(c * warmup_per_thread * parts for c in levels)


def run_admission(
    base_url: str,
    keys: dict[str, str],
    *,
    levels: list[int],
    requests_per_thread: int,
    warmup_per_thread: int,
    watch: list[Child],
    meter_factory: Callable[[], CpuMeter],
) -> dict[str, dict[int, LevelResult]]:
    """Sync requests at each level with both keys (A-B-B-A); returns key name -> level -> pooled result."""
    results: dict[str, dict[int, LevelResult]] = {name: {} for name in KEYS}
    for c in levels:
        first, second = _halves(requests_per_thread)
        order = [("none", first), ("limits", first), ("limits", second), ("none", second)]
        parts: dict[str, list[LevelResult]] = {name: [] for name in KEYS}
        for name, n in order:
            if n <= 0:
                continue
            for child in watch:
                child.check_alive()
            meter = meter_factory()
            before: list[dict | None] = []
            res = run_level(
                base_url,
                keys[name],
                stream=False,
                concurrency=c,
                requests_per_thread=n,
                warmup_per_thread=warmup_per_thread,
                on_start=lambda: before.append(meter.snapshot()),
            )
            res.cpu = CpuMeter.delta(
                before[0] if before else None, meter.snapshot(), wall_s=res.duration_s, requests=res.requests
            )
            parts[name].append(res)
        for name in KEYS:
            res = results[name][c] = merge_results(parts[name])
            label = "no limits" if name == "none" else "limits"
            refused = res.error_statuses.get("429", 0)
            print(
                f"  admission {label:9} c={c:<3} {res.requests:5d} ok {res.errors:3d} err ({refused} × 429)  "
                f"{res.throughput_rps:7.1f} req/s  latency p50 {_ms(res.latency_ms.p50)}  "
                f"p99 {_ms(res.latency_ms.p99)}",
                flush=True,
            )
            if res.cpu:
                print(f"        {describe_cpu(res.cpu)}", flush=True)
    return results
