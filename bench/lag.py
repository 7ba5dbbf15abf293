"""Answer → ledger: how long after a job ended (its caller had the answer) its record and bill were stored.

The gateway's writer observes that lag into the Prometheus histogram `llmproxy_record_lag_seconds` (cumulative
buckets `le`, `_sum`, `_count`), served at `GET /metrics`. The bench scrapes it right before and right after each
measured phase of the proxy and keeps the difference: the lag of that phase's records alone. A histogram has
no exact quantiles, only buckets: p50 and p99 here are the upper bound of the bucket the quantile falls in.
"""

from __future__ import annotations

import math
import re
import time

import requests

from bench import tables

HISTOGRAM = "llmproxy_record_lag_seconds"
BACKLOG = "llmproxy_records_backlog"
GOAL_P99_S = 2.0  # answer → ledger p99, every phase
# Each gateway process sends its counters to Redis once a second: a phase's last observations may reach the
# scrape that late, so the figures count as settled once they stood still for longer than that.
STILL_S = 1.5
SETTLE_TIMEOUT_S = 30.0

_SAMPLE = re.compile(r'^(?P<name>[a-zA-Z_:][\w:]*)(?:\{le="(?P<le>[^"]*)"\})?\s+(?P<value>\S+)\s*$')


def parse(text: str) -> dict | None:
    """The lag histogram and the records backlog from Prometheus text; None if the histogram is not there.

    {"buckets": {upper bound in s (inf for +Inf): cumulative count}, "count", "sum_s", "backlog" (None if absent)}.
    """
    buckets: dict[float, float] = {}
    found: dict[str, float] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line.strip())
        if not match:
            continue
        name, le = match["name"], match["le"]
        try:
            value = float(match["value"])
        except ValueError:
            continue
        if name == HISTOGRAM + "_bucket" and le is not None:
            try:
                buckets[float(le)] = value  # float("+Inf") is inf
            except ValueError:
                continue
        elif name in (HISTOGRAM + "_count", HISTOGRAM + "_sum", BACKLOG) and le is None:
            found[name] = value
    if not buckets or HISTOGRAM + "_count" not in found:
        return None
    return {
        "buckets": buckets,
        "count": found[HISTOGRAM + "_count"],
        "sum_s": found.get(HISTOGRAM + "_sum", 0.0),
        "backlog": found.get(BACKLOG),
    }


def bucket_quantile(buckets: list[tuple[float, float]], q: float) -> float | None:
    """The upper bound of the bucket the q-quantile (0..1) falls in; inf above the last finite bound.

    `buckets`: (upper bound, cumulative count) sorted by bound, the last one +Inf; None if it holds nothing.
    """
    total = buckets[-1][1] if buckets else 0
    if total <= 0:
        return None
    rank = q * total
    for bound, cumulative in buckets:
        if cumulative >= rank:
            return bound
    return math.inf


def summarize(before: dict | None, after: dict | None) -> dict:
    """A phase's lag from the scrapes around it: records, p50/p99 bucket bounds (s), mean; "n/a" without data.

    Either scrape missing (unreachable, no histogram), different buckets or a count going down (Redis emptied)
    leave nothing to compare: {"available": False, "reason": …}.
    """
    if before is None or after is None:
        return {"available": False, "reason": "no llmproxy_record_lag_seconds at /metrics"}
    if set(before["buckets"]) != set(after["buckets"]):
        return {"available": False, "reason": "the histogram's buckets changed during the phase"}
    bounds = sorted(after["buckets"])
    cumulative = [(b, after["buckets"][b] - before["buckets"][b]) for b in bounds]
    records = after["count"] - before["count"]
    if records < 0 or any(n < 0 for _, n in cumulative):
        return {"available": False, "reason": "the histogram went backwards (metrics reset)"}
    if not bounds or not math.isinf(bounds[-1]):
        cumulative.append((math.inf, records))
    summary: dict = {"available": True, "records": int(records)}
    for name, q in (("p50", 0.5), ("p99", 0.99)):
        bound = bucket_quantile(cumulative, q)
        # JSON has no infinity: a quantile above the last finite bucket is None with its floor beside it.
        summary[f"{name}_s"] = None if bound is None or math.isinf(bound) else bound
        summary[f"{name}_over_s"] = _last_finite(bounds) if bound is not None and math.isinf(bound) else None
    summary["mean_s"] = (after["sum_s"] - before["sum_s"]) / records if records else None
    return summary


def _last_finite(bounds: list[float]) -> float | None:
    finite = [b for b in bounds if not math.isinf(b)]
    return finite[-1] if finite else None


def quantile_text(summary: dict, name: str) -> str:
    """`≤ 0.05 s`, `> 60 s` or `n/a`: a quantile as the bucket bound it is."""
    if not summary.get("available") or not summary.get("records"):
        return "n/a"
    if summary.get(f"{name}_over_s") is not None:
        return f"> {summary[f'{name}_over_s']:g} s"
    value = summary.get(f"{name}_s")
    return "n/a" if value is None else f"≤ {value:g} s"


def worst_p99(phases: list[dict]) -> tuple[dict | None, float | None]:
    """The phase with the highest p99 bound (inf above the buckets) and that bound; (None, None) if none has one."""
    ranked = [
        (math.inf if p["lag"].get("p99_over_s") is not None else p["lag"]["p99_s"], p)
        for p in phases
        if p["lag"].get("available") and p["lag"].get("records")
    ]
    if not ranked:
        return None, None
    bound, phase = max(ranked, key=lambda item: item[0])
    return phase, bound


def phase_line(summary: dict) -> str:
    """One line for the console after a phase."""
    if not summary.get("available"):
        return f"answer → ledger: n/a ({summary.get('reason')})"
    mean = summary.get("mean_s")
    return (
        f"answer → ledger: {summary['records']} records, p50 {quantile_text(summary, 'p50')}, "
        f"p99 {quantile_text(summary, 'p99')}" + (f", mean {mean * 1000:.0f} ms" if mean is not None else "")
    )


def scrape(metrics_url: str, timeout: float = 5.0) -> dict | None:
    """GET /metrics and parse it; None when it cannot be reached or has no lag histogram."""
    try:
        resp = requests.get(metrics_url, timeout=timeout)
    except requests.RequestException:
        return None
    return parse(resp.text) if resp.status_code == 200 else None


def settled(metrics_url: str, *, timeout_s: float = SETTLE_TIMEOUT_S, poll_s: float = 0.3) -> dict | None:
    """Scrape until the writer's backlog is empty and the record count stood still for STILL_S; the last scrape.

    Its "settled" says whether that happened within `timeout_s` (if not, records still waiting are left out).
    """
    deadline = time.monotonic() + timeout_s
    last = scrape(metrics_url)
    if last is None:
        return None
    still_since = time.monotonic()
    while True:
        now = time.monotonic()
        if not last.get("backlog") and now - still_since >= STILL_S:
            return {**last, "settled": True}
        if now >= deadline:
            return {**last, "settled": False}
        time.sleep(poll_s)
        current = scrape(metrics_url)
        if current is None:
            return None
        if current["count"] != last["count"] or current.get("backlog"):
            still_since = time.monotonic()
        last = current


class LagRecorder:
    """Scrapes around each measured phase and keeps one summary per phase (`phases`), in order."""

    def __init__(self, metrics_url: str) -> None:
        self.metrics_url = metrics_url
        self.phases: list[dict] = []
        self._before: dict | None = None

    def begin(self) -> None:
        """Right before a phase: wait for the previous phase's records, then take the starting figures."""
        self._before = settled(self.metrics_url)

    def end(self, phase: str, sent: int | None) -> dict:
        """Right after a phase: wait for its records, keep and return its summary (`sent`: requests or lines)."""
        after = settled(self.metrics_url)
        lag = summarize(self._before, after)
        if after is not None and not after.get("settled"):
            lag["unsettled_backlog"] = after.get("backlog")
        self.phases.append({"phase": phase, "sent": sent, "lag": lag})
        self._before = None
        return lag


def render(phases: list[dict]) -> list[str]:
    """The lag of every measured phase as a table, with how to read its quantiles."""
    rows = []
    for p in phases:
        summary = p["lag"]
        mean = summary.get("mean_s")
        note = "" if summary.get("available") else summary.get("reason", "")
        if summary.get("unsettled_backlog"):
            note = f"{summary['unsettled_backlog']} records still waiting at the last scrape"
        rows.append(
            (
                p["phase"],
                str(summary["records"]) if summary.get("available") else "n/a",
                "-" if p.get("sent") is None else str(p["sent"]),
                quantile_text(summary, "p50"),
                quantile_text(summary, "p99"),
                "-" if mean is None else f"{mean * 1000:.0f} ms",
                note,
            )
        )
    return [
        "answer → ledger: from a job's end (the caller has its answer) to its stored ledger row; the writer's "
        f"{HISTOGRAM} at GET /metrics, scraped before and after each phase; p50/p99 are the upper bounds of the "
        "buckets they fall in",
        *tables.table(
            ("phase", "records", "sent (incl. warm-up)", "p50", "p99", "mean", "note"), rows, left=1, right_until=6
        ),
    ]
