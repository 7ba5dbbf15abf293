"""The dashboard's overview (charts of a recent range, queues and workers, refreshing itself) and usage tables
(by key, model, provider or day over a range of UTC days, with CSV export), all read from the usage rollup."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from typing import Any

import redis
from flask import Response, abort, jsonify, render_template, request

from llmproxy.billing import rollup_reports
from llmproxy.billing.rollup_reports import GROUPS, RANGES
from llmproxy.jobs.queues import Queue, queue_depth
from llmproxy.telemetry.heartbeats import live_consumers
from web.context import db, resources
from web.dashboard.blueprint import bp
from web.dashboard.signin import admin_page

REFRESH_SECONDS = 30
DEFAULT_DAYS = 7


@bp.get("/overview")
@admin_page
def overview() -> Any:
    """Requests, latency, errors, spend and tokens over 24 h, 7 d or 30 d (?range=), with queues and workers."""
    name = _range_name()
    return render_template(
        "dashboard/overview.html", data=_overview_data(name), ranges=list(RANGES), range=name, refresh=REFRESH_SECONDS
    )


@bp.get("/overview.json")
@admin_page
def overview_data() -> Any:
    """The overview's figures, for its page to redraw itself."""
    return jsonify(_overview_data(_range_name()))


@bp.get("/usage")
@admin_page
def usage() -> Any:
    """Totals by key, model, provider or day (?group_by=) over UTC days ?from= to ?to= (inclusive); ?format=csv."""
    group_by = request.args.get("group_by", "model")
    if group_by not in GROUPS:
        abort(400, f"group_by must be one of {', '.join(GROUPS)}.")
    today = datetime.now(UTC).date()
    first, last = _day("from", today - timedelta(days=DEFAULT_DAYS - 1)), _day("to", today)
    if first > last:
        abort(400, "The range ends before it starts.")
    rows = rollup_reports.usage_table(db(), group_by, first, last)
    if request.args.get("format") == "csv":
        return _csv(rows, group_by, first, last)
    return render_template("dashboard/usage.html", rows=rows, group_by=group_by, groups=GROUPS, first=first, last=last)


def _range_name() -> str:
    name = request.args.get("range", "24h")
    if name not in RANGES:
        abort(400, f"range must be one of {', '.join(RANGES)}.")
    return name


def _overview_data(name: str) -> dict[str, Any]:
    data = rollup_reports.overview(db(), name)
    client = resources().redis
    try:
        data["queues"] = [
            {"queue": q.value, "depth": queue_depth(client, q.value), "workers": live_consumers(client, q.value)}
            for q in Queue
        ]
    except redis.RedisError:
        data["queues"] = []  # shown as unknown
    return data


def _day(param: str, default: date) -> date:
    raw = request.args.get(param)
    if not raw:
        return default
    try:
        return date.fromisoformat(raw)
    except ValueError:
        abort(400, f"{param} must be a date (YYYY-MM-DD).")


def _csv(rows: list[dict[str, Any]], group_by: str, first: date, last: date) -> Response:
    out = io.StringIO()
    fields = [group_by, *(["name"] if group_by == "key" else []), "requests", "prompt_tokens", "completion_tokens"]
    writer = csv.writer(out)
    writer.writerow([*fields, "cost_usd"])
    for row in rows:
        writer.writerow(
            [
                row["group"],
                *([row["name"]] if group_by == "key" else []),
                row["requests"],
                row["prompt_tokens"],
                row["completion_tokens"],
                row["cost_usd"],
            ]
        )
    name = f"usage-by-{group_by}-{first.isoformat()}-{last.isoformat()}.csv"
    return Response(
        out.getvalue(), mimetype="text/csv", headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )
