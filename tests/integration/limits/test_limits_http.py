"""Limits at the HTTP edge: 429 bodies name the limit, Retry-After is real, headers on every response."""

from decimal import Decimal

from sqlalchemy import select

from llmproxy.storage.models import UsageEntry
from tests.support import records

MSG = [{"role": "user", "content": "hello there"}]


def ask(client, secret, **body):
    return client.post(
        "/v1/chat/completions",
        json={"model": "gpt-3.5-turbo", "messages": MSG, **body},
        headers={"Authorization": f"Bearer {secret}"},
    )


def test_rpm_refusal_and_headers(client, make_key, upstream, worker):
    secret, _ = make_key(rpm_limit=2)
    first = ask(client, secret)
    assert first.status_code == 200
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    assert ask(client, secret).status_code == 200
    refused = ask(client, secret)
    assert refused.status_code == 429
    assert refused.json["error"]["code"] == "rate_limit_exceeded" and refused.json["error"]["param"] == "requests"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"


def test_request_bigger_than_tpm_is_refused_without_retry_after(client, make_key, upstream):
    secret, _ = make_key(tpm_limit=100)
    refused = ask(client, secret, max_tokens=500)
    assert refused.status_code == 429 and refused.json["error"]["param"] == "tokens"
    assert "Retry-After" not in refused.headers
    assert "Request too large" in refused.json["error"]["message"]


def test_tokens_return_when_requests_end(client, make_key, upstream, worker, db):
    """Reservations larger than real usage: capacity returns at once, not after the window."""
    secret, _ = make_key(tpm_limit=1000)
    for _ in range(5):  # each reserves ~600 tokens but uses ~20: only possible if settled at once
        r = ask(client, secret, max_tokens=600)
        assert r.status_code == 200, r.json
        assert int(r.headers["x-ratelimit-remaining-tokens"]) < 1000 - 600 + 1


def test_budget_spent_gives_insufficient_quota(client, make_key, upstream, worker, db):
    secret, key = make_key(budget_usd="0.0001")
    r = ask(client, secret, max_tokens=10)
    assert r.status_code == 200
    spent = Decimal(r.headers["x-llmproxy-cost-usd"])
    client.patch(
        f"/admin/keys/{key['id']}",
        json={"budget_usd": str(spent)},
        headers={"Authorization": "Bearer admin-test-key-0123456789"},
    )
    refused = ask(client, secret, max_tokens=10)
    assert refused.status_code == 429
    assert refused.json["error"]["code"] == "insufficient_quota"
    # Refused while the served request's record may still be on its way: the spend settled in Redis counts.
    records.recorded_ledger(db, r.headers["x-request-id"])
    with db() as s:
        assert len(s.scalars(select(UsageEntry)).all()) == 1
