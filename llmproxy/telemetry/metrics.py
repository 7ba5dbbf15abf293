"""Prometheus metrics kept in Redis, so every web and worker process adds to the same figures.

Counters are Redis hashes (HINCRBY), one field per label set; the scrape
renders them as Prometheus text. Labels are routes, statuses, providers,
outcomes and model names — never keys or secrets — and every one comes from a
bounded set (llmproxy.telemetry.labels), since a hash field, once written, stays.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal

import redis

from llmproxy.jsontypes import JSON
from llmproxy.telemetry.labels import method_label, outcome_label, status_label

log = logging.getLogger(__name__)

PREFIX = "llmproxy:metrics:"
HTTP = PREFIX + "http"  # route|method|status -> count
ATTEMPTS = PREFIX + "attempts"  # provider|outcome -> count
DEPLOYMENT_ATTEMPTS = PREFIX + "deployment_attempts"  # model|deployment|provider|outcome -> count
TOKENS = PREFIX + "tokens"  # model|kind -> tokens
COST = PREFIX + "cost"  # model -> nano-dollars
JOB_LATENCY = PREFIX + "job_latency"  # bucket|le, sum_ms, count
RECORD_LAG = PREFIX + "record_lag"  # bucket|le, sum_ms, count: from a job's end to its stored record
LATENCY_BUCKETS_MS = (50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000)


class Counters:
    """Counter increments added up in this process and sent to Redis in one pipeline every `interval` seconds.

    A request or job only adds to a dict: no Redis round trip on its path (measured: a twentieth of the
    web's CPU per request, and the worker's pipeline of a dozen HINCRBYs per job). The scrape flushes its
    own process first; other processes' figures are at most `interval` seconds behind. Increments that
    could not be sent (Redis down) are kept for the next flush. With interval=None nothing is sent until
    flush() is called.
    """

    def __init__(self, client: redis.Redis, interval: float | None = 1.0) -> None:
        self._client = client
        self._interval = interval
        self._lock = threading.Lock()
        self._pending: dict[str, Counter[str]] = {}
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def add(self, key: str, field: str, amount: int = 1) -> None:
        """Add to one counter field (sent with the next flush)."""
        with self._lock:
            self._pending.setdefault(key, Counter())[field] += amount
            if self._thread is None and self._interval is not None:
                self._start()

    def flush(self) -> None:
        """Send what has been added since the last flush; on a Redis error keep it for the next one."""
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return
        try:
            pipe = self._client.pipeline(transaction=False)
            for key, fields in pending.items():
                for field, amount in fields.items():
                    pipe.hincrby(key, field, amount)
            pipe.execute()
        except redis.RedisError:
            with self._lock:
                for key, fields in pending.items():
                    self._pending.setdefault(key, Counter()).update(fields)
            raise

    def close(self) -> None:
        """Stop the flusher and send what is left."""
        self._stop.set()
        try:
            self.flush()
        except redis.RedisError:
            log.warning("could not send the last metrics")

    def _start(self) -> None:
        # Called under the lock, in the process that counts (so after any fork).
        self._thread = threading.Thread(target=self._loop, name="metrics-flush", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def _loop(self) -> None:
        failing = False
        while not self._stop.wait(self._interval or 1.0):
            try:
                self.flush()
            except Exception as exc:  # noqa: BLE001 - kept and retried on the next tick
                if not failing:  # once per outage, not once a second
                    log.warning("could not send metrics (kept until Redis answers): %s", exc)
                failing = True
            else:
                failing = False


def record_http(counters: Counters, *, route: str, method: str, status: int) -> None:
    """Count one HTTP response; `route` must be a route template (or "unmatched"), never a raw path."""
    counters.add(HTTP, f"{route}|{method_label(method)}|{status_label(status)}")


def record_job(
    counters: Counters,
    *,
    attempts: list[JSON],
    model: str | None,
    prompt_tokens: int,
    completion_tokens: int,
    cost_usd: Decimal | None,
    latency_ms: int | None,
) -> None:
    """Count a finished job's upstream attempts, tokens, cost and latency."""
    for attempt in attempts:
        outcome = outcome_label(attempt.get("outcome"))
        counters.add(ATTEMPTS, f"{attempt.get('provider')}|{outcome}")
        if attempt.get("deployment") is not None:
            where = f"{attempt.get('model')}|{attempt['deployment']}|{attempt.get('provider')}"
            counters.add(DEPLOYMENT_ATTEMPTS, f"{where}|{outcome}")
    if model:
        counters.add(TOKENS, f"{model}|prompt", prompt_tokens)
        counters.add(TOKENS, f"{model}|completion", completion_tokens)
        if cost_usd:
            counters.add(COST, model, int(cost_usd * 10**9))
    if latency_ms is not None:
        _observe(counters, JOB_LATENCY, latency_ms)


def record_lag(counters: Counters, lag_ms: int) -> None:
    """Count how long a job's record took from its end (the caller had the answer) to its committed row."""
    _observe(counters, RECORD_LAG, lag_ms)


def _observe(counters: Counters, key: str, value_ms: int) -> None:
    for bound in LATENCY_BUCKETS_MS:
        if value_ms <= bound:
            counters.add(key, f"le|{bound}")
    counters.add(key, "sum_ms", value_ms)
    counters.add(key, "count")


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


def _counter(
    lines: list[str], name: str, help_: str, rows: dict[bytes, bytes], labels: tuple[str, ...], scale: int = 1
) -> None:
    lines += [f"# HELP {name} {help_}", f"# TYPE {name} counter"]
    for field, value in sorted((k.decode(), int(v)) for k, v in rows.items()):
        parts = field.split("|")
        if len(parts) != len(labels):
            continue
        rendered = ",".join(f'{k}="{_label(v)}"' for k, v in zip(labels, parts))
        lines.append(f"{name}{{{rendered}}} {value / scale if scale != 1 else value}")


def render(
    client: redis.Redis,
    *,
    queue_depths: dict[str, int],
    records_backlog: int = 0,
    deployments: list[DeploymentHealth] | None = None,
) -> str:
    """All metrics in Prometheus' text format (`deployments`: each deployment's health, when the catalog answered)."""
    pipe = client.pipeline(transaction=False)
    for key in (HTTP, ATTEMPTS, DEPLOYMENT_ATTEMPTS, TOKENS, COST, JOB_LATENCY, RECORD_LAG):
        pipe.hgetall(key)
    http, attempts, deployment_attempts, tokens, cost, latency, lag = pipe.execute()
    lines: list[str] = []
    _counter(
        lines,
        "llmproxy_http_requests_total",
        "HTTP responses by route, method and status.",
        http,
        ("route", "method", "status"),
    )
    _counter(
        lines,
        "llmproxy_upstream_attempts_total",
        "Upstream attempts by provider and outcome.",
        attempts,
        ("provider", "outcome"),
    )
    _counter(
        lines,
        "llmproxy_deployment_attempts_total",
        "Upstream attempts by model, deployment (its id), provider and outcome: the traffic each deployment took.",
        deployment_attempts,
        ("model", "deployment", "provider", "outcome"),
    )
    if deployments is not None:
        _deployment_health(lines, deployments)
    _counter(lines, "llmproxy_tokens_total", "Tokens billed by served model and kind.", tokens, ("model", "kind"))
    _counter(lines, "llmproxy_cost_usd_total", "Cost billed in USD by served model.", cost, ("model",), scale=10**9)
    lines += ["# HELP llmproxy_queue_depth Messages waiting per queue.", "# TYPE llmproxy_queue_depth gauge"]
    lines += [f'llmproxy_queue_depth{{queue="{q}"}} {depth}' for q, depth in queue_depths.items()]
    lines += [
        "# HELP llmproxy_records_backlog Ended jobs waiting for the writer to store them.",
        "# TYPE llmproxy_records_backlog gauge",
        f"llmproxy_records_backlog {records_backlog}",
    ]
    _histogram(lines, "llmproxy_job_latency_seconds", "Time from a job's start to its end.", latency)
    _histogram(lines, "llmproxy_record_lag_seconds", "Time from a job's end to its stored record and bill.", lag)
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class DeploymentHealth:
    """One deployment as the scrape shows it: who it serves, and how long it still cools down (0: healthy)."""

    model: str
    deployment: int
    provider: str
    enabled: bool
    cooldown_seconds: float


def _deployment_health(lines: list[str], deployments: list[DeploymentHealth]) -> None:
    name = "llmproxy_deployment_cooldown_seconds"
    lines += [
        f"# HELP {name} Seconds a deployment is still kept out of routing after 429/5xx/timeouts (0: healthy).",
        f"# TYPE {name} gauge",
    ]
    for d in deployments:
        labels = f'model="{_label(d.model)}",deployment="{d.deployment}",provider="{_label(d.provider)}"'
        lines.append(f"{name}{{{labels}}} {d.cooldown_seconds:g}")
    name = "llmproxy_deployment_enabled"
    lines += [f"# HELP {name} 1 for an enabled deployment, 0 for a disabled one.", f"# TYPE {name} gauge"]
    for d in deployments:
        labels = f'model="{_label(d.model)}",deployment="{d.deployment}",provider="{_label(d.provider)}"'
        lines.append(f"{name}{{{labels}}} {int(d.enabled)}")


def _histogram(lines: list[str], name: str, help_: str, rows: dict[bytes, bytes]) -> None:
    values = {k.decode(): int(v) for k, v in rows.items()}
    lines += [f"# HELP {name} {help_}", f"# TYPE {name} histogram"]
    for bound in LATENCY_BUCKETS_MS:
        lines.append(f'{name}_bucket{{le="{bound / 1000:g}"}} {values.get(f"le|{bound}", 0)}')
    lines.append(f'{name}_bucket{{le="+Inf"}} {values.get("count", 0)}')
    lines.append(f"{name}_sum {values.get('sum_ms', 0) / 1000:g}")
    lines.append(f"{name}_count {values.get('count', 0)}")
