"""The gateway's own goals, each met or not: answer → ledger lag, and the batch's drain rate and its cost to
synchronous callers (`report["goals"]`). The goals relative to a peer gateway are in peer_report.py."""

from __future__ import annotations

import math

from bench import lag, tables

BATCH_DRAIN_RATIO_MIN = 0.8  # batch: lines/s until every line ended ÷ the ideal (procs × threads ÷ latency)
PROBE_P50_RATIO_MAX = 1.2  # batch: sync probe p50 while the batch drains ÷ its p50 on the idle system


def goal(name: str, value: float | None, shown: str, *, bound: float, at_most: bool, unit: str, clean: bool) -> dict:
    """A goal row: `value` against `bound` (at most or at least); met only if nothing involved failed.

    `shown` is the value as the table prints it; a missing value leaves the goal "n/a".
    """
    met = None if value is None else clean and (value <= bound if at_most else value >= bound)
    return {
        "goal": name,
        "value": None if value is None or math.isinf(value) else value,
        "shown": shown,
        "target": f"{'≤' if at_most else '≥'} {bound:g}{unit}",
        "met": met,
        "status": "n/a" if met is None else ("met" if met else "not met"),
    }


def lag_goal(phases: list[dict]) -> dict:
    """Answer → ledger p99 ≤ 2 s in every measured phase, judged on the worst phase's bucket bound.

    Conservative: a p99 in a bucket whose upper bound is above 2 s (1–2.5 s) is not met.
    """
    worst, bound = lag.worst_p99(phases)
    name = "answer → ledger p99" + (f" (worst of {len(phases)} phases: {worst['phase']})" if worst else "")
    shown = lag.quantile_text(worst["lag"], "p99") if worst else "n/a"
    return goal(name, bound, shown, bound=lag.GOAL_P99_S, at_most=True, unit=" s", clean=True)


def batch_goals(bat: dict) -> list[dict]:
    """Drain rate ÷ ideal ≥ 0.8× (a completed batch, no failed line), probe p50 draining ÷ idle ≤ 1.2× (no error)."""
    out = bat.get("output") or {}
    failed = (bat.get("request_counts") or {}).get("failed")
    drain = tables.compare(bat["ideal_lines_per_s"], bat["lines_per_s"], "ratio")
    idle, busy = bat["probe_idle"], bat["probe_draining"]
    probe = tables.compare(idle.latency_ms.p50, busy.latency_ms.p50, "ratio")
    ideal = f"{bat.get('procs', 1)} × {bat['threads']} threads ÷ {bat['latency_ms']:g} ms"
    return [
        goal(
            f"batch drain ÷ ideal ({ideal})",
            drain,
            tables.delta_text(drain, "ratio"),
            bound=BATCH_DRAIN_RATIO_MIN,
            at_most=False,
            unit="×",
            clean=bat["status"] == "completed" and out.get("errors") == 0 and not failed,
        ),
        goal(
            "batch: sync probe p50, draining ÷ idle",
            probe,
            tables.delta_text(probe, "ratio"),
            bound=PROBE_P50_RATIO_MAX,
            at_most=True,
            unit="×",
            clean=idle.errors == 0 and busy.errors == 0,
        ),
    ]


def render_goals(goals: list[dict]) -> list[str]:
    """The goals as a table: goal, measured, bound, result."""
    rows = [(g["goal"], g["shown"], g["target"], g["status"]) for g in goals]
    return ["goals: the gateway's own", *tables.table(("goal", "measured", "bound", "result"), rows, left=1)]
