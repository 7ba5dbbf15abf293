"""What /metrics and /readyz give away: no label a caller invents, and nothing without METRICS_TOKEN when it is set."""

from __future__ import annotations

import pytest

from llmproxy.telemetry import metrics

TOKEN = "metrics-token-0123456789"
JUNK = ("BREW", "no-such-path-abc123", "no-such-model-xyz")


def metric_fields(rds) -> list[str]:
    """Every counter field of every metrics hash (each is one label set)."""
    return [field.decode() for key in rds.scan_iter(metrics.PREFIX + "*") for field in rds.hkeys(key)]


def test_made_up_methods_paths_and_models_add_no_label_value(client, make_key, rds):
    secret, _ = make_key(name="labels")

    assert client.open("/healthz", method="BREW").status_code == 405
    assert client.open("/v1/models", method="BREW", headers={"Authorization": f"Bearer {secret}"}).status_code == 405
    assert client.get("/no-such-path-abc123/job_0123").status_code == 404
    refused = client.post(
        "/v1/chat/completions",
        json={"model": "no-such-model-xyz", "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert refused.status_code in (400, 404), refused.json
    text = client.get("/metrics").get_data(as_text=True)  # sends this process's counts first

    fields = metric_fields(rds)
    assert "unmatched|other|405" in fields  # counted, under the bounded values
    assert "unmatched|GET|404" in fields
    for junk in JUNK:
        assert not [f for f in fields if junk in f], junk
        assert junk not in text
    methods = {field.decode().split("|")[1] for field in rds.hkeys(metrics.HTTP)}
    assert methods <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}


@pytest.fixture
def guarded(settings, db, redis_client):
    """An app with METRICS_TOKEN set, on a Redis database no worker heartbeats into (so /readyz has details)."""
    from web import create_app

    scratch = redis_client.connection_pool.connection_kwargs
    url = f"redis://{scratch['host']}:{scratch['port']}/{scratch['db']}"
    return create_app(settings.with_(redis_url=url, metrics_token=TOKEN)).test_client()


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token-0123456789", f"Basic {TOKEN}", TOKEN])
def test_metrics_need_the_token_when_it_is_set(guarded, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    r = guarded.get("/metrics", headers=headers)
    assert r.status_code == 401
    assert r.json == {
        "error": {
            "message": "This route needs the METRICS_TOKEN as a bearer token",
            "type": "authentication_error",
            "param": None,
            "code": "invalid_metrics_token",
        }
    }
    assert r.headers["WWW-Authenticate"] == "Bearer"
    assert "llmproxy_cost_usd_total" not in r.get_data(as_text=True)


def test_metrics_answer_with_the_token(guarded):
    r = guarded.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200
    assert "# TYPE llmproxy_cost_usd_total counter" in r.get_data(as_text=True)


def test_readyz_tells_only_its_status_without_the_token(guarded):
    anonymous = guarded.get("/readyz")
    assert anonymous.status_code == 503 and anonymous.json == {"status": "unavailable"}
    wrong = guarded.get("/readyz", headers={"Authorization": "Bearer wrong-token-0123456789"})
    assert wrong.status_code == 503 and wrong.json == {"status": "unavailable"}
    operator = guarded.get("/readyz", headers={"Authorization": f"Bearer {TOKEN}"})
    assert operator.status_code == 503
    assert "no writer stores ended jobs" in operator.json["missing"]
