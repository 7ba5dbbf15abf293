"""Prometheus metrics kept in Redis, so every web and worker process adds to the same figures.

Counters are Redis hashes (HINCRBY), one field per label set; the scrape
renders them as Prometheus text. Labels are routes, statuses, providers,
outcomes and model names — never keys or secrets.
"""
from __future__ import annotations

from decimal import Decimal

import redis

from llmproxy.queueing import QUEUES, queue_depth

PREFIX = "llmproxy:metrics:"
HTTP = PREFIX + "http"              # route|method|status -> count
ATTEMPTS = PREFIX + "attempts"      # provider|outcome -> count
TOKENS = PREFIX + "tokens"          # model|kind -> tokens
COST = PREFIX + "cost"              # model -> nano-dollars
JOB_LATENCY = PREFIX + "job_latency"  # bucket|le, sum_ms, count
LATENCY_BUCKETS_MS = (50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000)


def record_http(client: redis.Redis, *, route: str, method: str, status: int) -> None:
    """Count one HTTP response."""
    client.hincrby(HTTP, f"{route}|{method}|{status}", 1)


def record_job(client: redis.Redis, *, attempts: list[dict], model: str | None, prompt_tokens: int,
               completion_tokens: int, cost_usd: Decimal | None, latency_ms: int | None) -> None:
    """Count a finished job's upstream attempts, tokens, cost and latency (one round trip)."""
    pipe = client.pipeline(transaction=False)
    for attempt in attempts:
        pipe.hincrby(ATTEMPTS, f"{attempt.get('provider')}|{attempt.get('outcome')}", 1)
    if model:
        pipe.hincrby(TOKENS, f"{model}|prompt", prompt_tokens)
        pipe.hincrby(TOKENS, f"{model}|completion", completion_tokens)
        if cost_usd:
            pipe.hincrby(COST, model, int(cost_usd * 10**9))
    if latency_ms is not None:
        for bound in LATENCY_BUCKETS_MS:
            if latency_ms <= bound:
                pipe.hincrby(JOB_LATENCY, f"le|{bound}", 1)
        pipe.hincrby(JOB_LATENCY, "sum_ms", latency_ms)
        pipe.hincrby(JOB_LATENCY, "count", 1)
    pipe.execute()


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


def _counter(lines: list[str], name: str, help_: str, rows: dict, labels: tuple[str, ...], scale=1) -> None:
    lines += [f"# HELP {name} {help_}", f"# TYPE {name} counter"]
    for field, value in sorted((k.decode(), int(v)) for k, v in rows.items()):
        parts = field.split("|")
        if len(parts) != len(labels):
            continue
        rendered = ",".join(f'{k}="{_label(v)}"' for k, v in zip(labels, parts))
        lines.append(f"{name}{{{rendered}}} {value / scale if scale != 1 else value}")


def render(client: redis.Redis) -> str:
    """All metrics in Prometheus' text format."""
    pipe = client.pipeline(transaction=False)
    for key in (HTTP, ATTEMPTS, TOKENS, COST, JOB_LATENCY):
        pipe.hgetall(key)
    http, attempts, tokens, cost, latency = pipe.execute()
    lines: list[str] = []
    _counter(lines, "llmproxy_http_requests_total", "HTTP responses by route, method and status.", http,
             ("route", "method", "status"))
    _counter(lines, "llmproxy_upstream_attempts_total", "Upstream attempts by provider and outcome.", attempts,
             ("provider", "outcome"))
    _counter(lines, "llmproxy_tokens_total", "Tokens billed by served model and kind.", tokens, ("model", "kind"))
    _counter(lines, "llmproxy_cost_usd_total", "Cost billed in USD by served model.", cost, ("model",),
             scale=10**9)
    lines += ["# HELP llmproxy_queue_depth Messages waiting per queue.", "# TYPE llmproxy_queue_depth gauge"]
    lines += [f'llmproxy_queue_depth{{queue="{q}"}} {queue_depth(client, q)}' for q in QUEUES]
    values = {k.decode(): int(v) for k, v in latency.items()}
    lines += ["# HELP llmproxy_job_latency_seconds Time from a job's start to its end.",
              "# TYPE llmproxy_job_latency_seconds histogram"]
    for bound in LATENCY_BUCKETS_MS:
        lines.append(f'llmproxy_job_latency_seconds_bucket{{le="{bound / 1000:g}"}} {values.get(f"le|{bound}", 0)}')
    lines.append(f'llmproxy_job_latency_seconds_bucket{{le="+Inf"}} {values.get("count", 0)}')
    lines.append(f"llmproxy_job_latency_seconds_sum {values.get('sum_ms', 0) / 1000:g}")
    lines.append(f"llmproxy_job_latency_seconds_count {values.get('count', 0)}")
    return "\n".join(lines) + "\n"
