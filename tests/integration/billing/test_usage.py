"""Usage: a key's own figures at /api/usage, the admin report at /admin/usage and the `usage` CLI, exact to the last decimal."""

import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import update

from llmproxy import ids as llmproxy_ids
from llmproxy.storage.engine import session_scope
from llmproxy.storage.models import ApiKey, Job, UsageEntry
from llmproxy.storage.money import money
from tests.support.cli import cli

UTC = UTC
DAY1 = datetime(2024, 3, 1, tzinfo=UTC)

# (key, requested, served, provider, prompt, completion, cost, at): costs use all 12 decimals and
# magnitudes where float sums would drift; two rows straddle midnight UTC.
LEDGER = [
    ("a", "gpt-4", "gpt-4", "openai", 100, 20, "0.100000000001", DAY1 + timedelta(hours=1)),
    ("a", "gpt-4", "mistral-large", "mistral", 7, 3, "0.2", DAY1 + timedelta(hours=23, minutes=59, seconds=59)),
    ("b", "gpt-3.5-turbo", "gpt-3.5-turbo", "openai", 5, 5, "1234567.000000000003", DAY1 + timedelta(days=1)),
    ("b", "mistral-tiny", "mistral-tiny", "mistral", 1, 0, "0.000000000001", DAY1 + timedelta(days=1, hours=2)),
    ("a", "gpt-4", "gpt-4", "openai", 40, 2, "0.333333333333", DAY1 + timedelta(days=3)),
]


def bill(session_factory, key_id, requested, served, provider, prompt, completion, cost, at):
    """A finished job and its ledger row, as the records writer (llmproxy.jobs.writer) leaves them (spend included)."""
    with session_scope(session_factory) as s:
        job = Job(
            id=llmproxy_ids.new_id("job"),
            api_key_id=key_id,
            model=requested,
            status="completed",
            queue="interactive",
            stream=False,
            request={"model": requested},
            attempts=[],
            run_count=1,
            cancel_requested=False,
            created_at=at,
            served_model=served,
            served_provider=provider,
            cost_usd=Decimal(cost),
        )
        s.add(job)
        s.flush()
        s.add(
            UsageEntry(
                job_id=job.id,
                api_key_id=key_id,
                model_requested=requested,
                model_served=served,
                provider_served=provider,
                prompt_tokens=prompt,
                completion_tokens=completion,
                cost_usd=Decimal(cost),
                outcome="completed",
                created_at=at,
            )
        )
        s.execute(update(ApiKey).where(ApiKey.id == key_id).values(spend_usd=ApiKey.spend_usd + Decimal(cost)))


@pytest.fixture
def ledger(db, make_key):
    """Two keys with the LEDGER rows, plus a job that was never billed (it must count nowhere)."""
    made = {"a": make_key(name="alpha", rpm_limit=10, tpm_limit=5000, budget_usd="1"), "b": make_key(name="beta")}
    ids = {name: body["id"] for name, (_secret, body) in made.items()}
    for key, *row in LEDGER:
        bill(db, ids[key], *row)
    with session_scope(db) as s:
        s.add(
            Job(
                id=llmproxy_ids.new_id("job"),
                api_key_id=ids["a"],
                model="gpt-4",
                status="failed",
                queue="interactive",
                stream=False,
                request={"model": "gpt-4"},
                attempts=[],
                run_count=1,
                cancel_requested=False,
                created_at=DAY1,
            )
        )
    return {name: {"secret": secret, "id": body["id"], "body": body} for name, (secret, body) in made.items()}


def expected(group_by, ids, since=None, until=None):
    """The report computed independently in Python with Decimal."""
    sums = defaultdict(lambda: [0, 0, 0, Decimal(0)])
    for key, requested, served, provider, prompt, completion, cost, at in LEDGER:
        if (since and at < since) or (until and at >= until):
            continue
        group = {
            "key": ids[key],
            "model": served,
            "model_requested": requested,
            "provider": provider,
            "day": at.date().isoformat(),
        }[group_by]
        row = sums[group]
        row[0] += 1
        row[1] += prompt
        row[2] += completion
        row[3] += Decimal(cost)
    return [
        {"group": g, "requests": r, "prompt_tokens": p, "completion_tokens": c, "cost_usd": money(cost)}
        for g, (r, p, c, cost) in sorted(sums.items())
    ]


def report(client, admin_headers, **params):
    response = client.get("/admin/usage", query_string=params, headers=admin_headers)
    assert response.status_code == 200, response.json
    assert response.json["object"] == "list"
    return response.json["data"]


@pytest.mark.parametrize("group_by", ["key", "model", "model_requested", "provider", "day"])
def test_report_sums_are_exact(client, admin_headers, ledger, group_by):
    ids = {name: k["id"] for name, k in ledger.items()}
    rows = report(client, admin_headers, group_by=group_by)
    if group_by == "key":
        names = {ids["a"]: "alpha", ids["b"]: "beta"}
        assert [r.pop("name") for r in rows] == [names[r["group"]] for r in rows]
    assert rows == expected(group_by, ids)


def test_report_exactness_is_not_a_float_accident(client, admin_headers, ledger):
    rows = {r["group"]: r for r in report(client, admin_headers, group_by="provider")}
    assert rows["openai"]["cost_usd"] == "1234567.433333333337"
    assert rows["mistral"]["cost_usd"] == "0.200000000001"
    days = [r["group"] for r in report(client, admin_headers, group_by="day")]
    assert days == ["2024-03-01", "2024-03-02", "2024-03-04"]  # 23:59:59 UTC stays on its own day


def test_since_until_are_half_open_and_take_several_forms(client, admin_headers, ledger):
    ids = {name: k["id"] for name, k in ledger.items()}
    since, until = DAY1 + timedelta(days=1), DAY1 + timedelta(days=3)
    want = expected("model", ids, since, until)
    assert len(want) == 2
    for s, u in [
        (int(since.timestamp()), int(until.timestamp())),
        ("2024-03-02", "2024-03-04"),
        ("2024-03-02T01:00:00+01:00", "2024-03-03T23:00:00-01:00"),
        ("2024-03-02T00:00:00Z", "2024-03-04 00:00:00"),
    ]:
        assert report(client, admin_headers, group_by="model", since=s, until=u) == want
    assert report(client, admin_headers, group_by="key", since="2030-01-01") == []
    only_last = report(client, admin_headers, group_by="day", since=int((DAY1 + timedelta(days=3)).timestamp()))
    assert only_last == expected("day", ids, since=DAY1 + timedelta(days=3))


@pytest.mark.parametrize(
    "params, param",
    [
        ({"group_by": "team"}, "group_by"),
        ({"group_by": "key", "since": "yesterday"}, "since"),
        ({"group_by": "key", "until": "2024-13-01"}, "until"),
        ({"group_by": "key", "since": "nan"}, "since"),
        ({"group_by": "key", "since": "1e300"}, "since"),
        ({"group_by": "key", "since": "2024-03-02", "until": "2024-03-01"}, "until"),
    ],
)
def test_bad_parameters_are_400_naming_the_parameter(client, admin_headers, ledger, params, param):
    response = client.get("/admin/usage", query_string=params, headers=admin_headers)
    assert response.status_code == 400
    assert response.json["error"]["type"] == "invalid_request_error" and response.json["error"]["param"] == param


def test_admin_report_refuses_virtual_keys_and_strangers(client, ledger):
    as_key = client.get("/admin/usage", headers={"Authorization": f"Bearer {ledger['a']['secret']}"})
    assert as_key.status_code == 403 and as_key.json["error"]["code"] == "admin_only"
    assert client.get("/admin/usage").status_code == 401
    assert client.get("/admin/usage", headers={"Authorization": "Bearer sk-nope"}).status_code == 401


def test_key_sees_only_its_own_usage(client, ledger):
    got = {}
    for name in ("a", "b"):
        response = client.get("/api/usage", headers={"Authorization": f"Bearer {ledger[name]['secret']}"})
        assert response.status_code == 200, response.json
        got[name] = response.json
    rows = [r for r in LEDGER if r[0] == "a"]
    a, b = got["a"], got["b"]
    assert a["key"] == {"id": ledger["a"]["id"], "name": "alpha", "prefix": ledger["a"]["body"]["prefix"]}
    assert a["limits"] == {"rpm": 10, "tpm": 5000, "budget_usd": "1"}
    assert a["spend_usd"] == money(sum(Decimal(r[6]) for r in rows)) == "0.633333333334"
    assert (a["requests"], a["prompt_tokens"], a["completion_tokens"]) == (3, 147, 25)  # the failed job is unbilled
    # A fresh key has its whole rate window; the budget left is budget minus spend.
    assert a["remaining"] == {"requests": 10, "tokens": 5000, "budget_usd": "0.366666666666"}
    assert b["key"]["id"] == ledger["b"]["id"] and b["spend_usd"] == "1234567.000000000004"
    assert (b["requests"], b["prompt_tokens"], b["completion_tokens"]) == (2, 6, 5)
    assert b["limits"] == {"rpm": None, "tpm": None, "budget_usd": None}
    assert b["remaining"] == {"requests": None, "tokens": None, "budget_usd": None}
    assert ledger["a"]["id"] not in json.dumps(b) and ledger["b"]["id"] not in json.dumps(a)


def test_key_usage_needs_a_virtual_key(client, admin_headers, ledger):
    assert client.get("/api/usage").status_code == 401
    assert client.get("/api/usage", headers=admin_headers).status_code == 401
    fresh = client.post("/admin/keys", json={"name": "new"}, headers=admin_headers).json
    empty = client.get("/api/usage", headers={"Authorization": f"Bearer {fresh['key']}"}).json
    assert (empty["spend_usd"], empty["requests"], empty["prompt_tokens"], empty["completion_tokens"]) == ("0", 0, 0, 0)


def test_cli_prints_the_same_figures(env, client, admin_headers, ledger):
    for group_by in ("key", "day"):
        out = json.loads(
            cli(env, "usage", "--group-by", group_by, "--since", "2024-03-01T12:00:00Z", "--until", "2024-03-04").stdout
        )
        assert out == report(client, admin_headers, group_by=group_by, since="2024-03-01T12:00:00Z", until="2024-03-04")
        assert out
    mine = json.loads(cli(env, "usage", "--key", ledger["b"]["id"]).stdout)
    web = client.get("/api/usage", headers={"Authorization": f"Bearer {ledger['b']['secret']}"}).json
    web.pop("remaining")  # from Redis; the CLI reports the database's figures
    assert mine == web
    bad = cli(env, "usage", "--group-by", "key", "--since", "soon", ok=False)
    assert bad.returncode == 1 and "'since'" in bad.stderr
    assert cli(env, "usage", ok=False).returncode == 1
    assert cli(env, "usage", "--key", "key_missing", ok=False).returncode == 1
