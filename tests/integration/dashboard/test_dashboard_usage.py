"""The overview and usage pages, read from the rollup, give exactly what /admin/usage reads from the ledger."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from llmproxy.devtools.stub_responses import Fail, Ok
from tests.support import records

ADMIN_KEY = "admin-test-key-0123456789"


def signed_in(client):
    assert client.post("/dashboard/login", data={"admin_key": ADMIN_KEY}).status_code == 302
    return client


def admin_usage(client, admin_headers, group_by: str, **window) -> list[dict]:
    query = "&".join(f"{k}={v}" for k, v in {"group_by": group_by, **window}.items())
    return client.get(f"/admin/usage?{query}", headers=admin_headers).json["data"]


def traffic(client, make_key, upstream, db) -> str:
    """Billed requests on two keys and two models, and one that fails (not billed); the failed one's error code."""
    ids = []
    keys = [make_key(name=f"team-{i}")[0] for i in range(2)]
    upstream.script("gpt-3.5-turbo", Ok(content="one", prompt_tokens=10, completion_tokens=3))
    upstream.script("mistral-tiny", Ok(content="two", prompt_tokens=20, completion_tokens=5))
    for secret, model in ((keys[0], "gpt-3.5-turbo"), (keys[1], "mistral-tiny"), (keys[1], "gpt-3.5-turbo")):
        r = client.post(
            "/v1/chat/completions",
            json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
            headers={"Authorization": f"Bearer {secret}"},
        )
        assert r.status_code == 200, r.json
        ids.append(r.headers["x-request-id"])
    upstream.script("mistral-large", *[Fail(400)])  # a caller error: failed, not billed
    r = client.post(
        "/v1/chat/completions",
        json={"model": "mistral-large", "messages": [{"role": "user", "content": "x"}]},
        headers={"Authorization": f"Bearer {keys[0]}"},
    )
    assert r.status_code == 400
    for job_id in ids:
        records.recorded_job(db, job_id)
    return records.recorded_job(db, r.headers["x-request-id"]).error["code"]


def test_the_overview_matches_admin_usage(client, admin_headers, make_key, upstream, worker, db):
    failed_code = traffic(client, make_key, upstream, db)
    signed_in(client)
    for name in ("24h", "7d", "30d"):
        data = client.get(f"/dashboard/overview.json?range={name}").json
        since = int(datetime.fromisoformat(data["since"]).timestamp())
        by_model = admin_usage(client, admin_headers, "model", since=since)
        by_day = admin_usage(client, admin_headers, "day", since=since)
        assert data["totals"]["requests"] == sum(r["requests"] for r in by_model) == 3
        assert Decimal(data["totals"]["cost_usd"]) == sum(Decimal(r["cost_usd"]) for r in by_model)
        assert [(d["day"], Decimal(d["cost_usd"])) for d in data["spend_per_day"]] == [
            (r["group"], Decimal(r["cost_usd"])) for r in by_day
        ]
        assert [(m["model"], m["prompt_tokens"], m["completion_tokens"]) for m in data["tokens_by_model"]] == [
            (r["group"], r["prompt_tokens"], r["completion_tokens"]) for r in by_model
        ]
        assert sum(data["latency"]["counts"]) == 3 and data["latency"]["p95_ms"] is not None
        assert data["errors_by_code"] == [{"code": failed_code, "count": 1}]
        assert {q["queue"] for q in data["queues"]} == {"interactive", "batch"}
        assert all(q["workers"] >= 1 for q in data["queues"])
    page = client.get("/dashboard/overview").get_data(as_text=True)
    assert 'id="overview-data"' in page and "uPlot.iife.min.js" in page


def test_the_usage_page_and_its_csv_match_admin_usage(client, admin_headers, make_key, upstream, worker, db):
    traffic(client, make_key, upstream, db)
    signed_in(client)
    today = datetime.now(UTC).date()
    since = int(datetime(today.year, today.month, today.day, tzinfo=UTC).timestamp())
    until = since + 86400
    for group_by in ("key", "model", "provider", "day"):
        expected = admin_usage(client, admin_headers, group_by, since=since, until=until)
        exported = client.get(f"/dashboard/usage?group_by={group_by}&from={today}&to={today}&format=csv")
        assert exported.status_code == 200 and exported.mimetype == "text/csv"
        rows = list(csv.DictReader(io.StringIO(exported.get_data(as_text=True))))
        assert [
            (r[group_by] or None, int(r["requests"]), int(r["prompt_tokens"]), Decimal(r["cost_usd"])) for r in rows
        ] == [(e["group"], e["requests"], e["prompt_tokens"], Decimal(e["cost_usd"])) for e in expected], group_by
        page = client.get(f"/dashboard/usage?group_by={group_by}&from={today}&to={today}").get_data(as_text=True)
        assert page.count("<tr data-group=") == len(expected)
    yesterday = today - timedelta(days=1)
    empty = client.get(f"/dashboard/usage?from={yesterday}&to={yesterday}").get_data(as_text=True)
    assert "Nothing billed in this range." in empty
    assert client.get(f"/dashboard/usage?from={today}&to={yesterday}").status_code == 400
    assert client.get("/dashboard/usage?group_by=planet").status_code == 400
