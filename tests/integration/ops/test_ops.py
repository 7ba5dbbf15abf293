"""Operations: readiness names what is missing; metrics count requests, attempts, tokens and cost without secrets."""

from llmproxy.devtools.waiting import wait_for


def test_readyz_names_what_is_missing(settings, db, redis_client):
    """An app whose Redis has no worker heartbeats (the scratch database), then one whose Redis is down."""
    from web import create_app

    scratch = redis_client.connection_pool.connection_kwargs
    url = f"redis://{scratch['host']}:{scratch['port']}/{scratch['db']}"
    response = create_app(settings.with_(redis_url=url)).test_client().get("/readyz")
    assert response.status_code == 503
    assert set(response.json["missing"]) == {
        "no worker consumes the 'interactive' queue",
        "no worker consumes the 'batch' queue",
        "no writer stores ended jobs",
    }
    down = create_app(settings.with_(redis_url="redis://127.0.0.1:1/0")).test_client().get("/readyz")
    assert down.status_code == 503 and down.json["missing"] == ["redis"]


def test_readyz_ready_with_a_worker(client, worker):
    assert client.get("/readyz").status_code == 200


def test_healthz(client):
    assert client.get("/healthz").json == {"status": "ok"}


def test_metrics_count_requests_attempts_tokens_and_cost(client, make_key, upstream, worker):
    secret, _ = make_key()
    r = client.post(
        "/v1/chat/completions",
        headers={"Authorization": f"Bearer {secret}"},
        json={"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "metrics"}]},
    )
    assert r.status_code == 200
    client.get("/v1/jobs/job_unknown", headers={"Authorization": f"Bearer {secret}"})
    # Workers send their counts once a second (nobody waits for counters): poll for them.
    text = wait_for(
        lambda: (
            (t := client.get("/metrics").get_data(as_text=True))
            and 'llmproxy_upstream_attempts_total{provider="openai",outcome="ok"}' in t
            and t
        ),
        timeout=10,
        message="the job's metrics",
    )
    assert 'llmproxy_http_requests_total{route="/v1/chat/completions",method="POST",status="200"}' in text
    assert 'llmproxy_http_requests_total{route="/v1/jobs/<job_id>",method="GET",status="404"}' in text
    assert 'llmproxy_upstream_attempts_total{provider="openai",outcome="ok"}' in text
    assert 'llmproxy_tokens_total{model="gpt-3.5-turbo",kind="prompt"}' in text
    assert 'llmproxy_cost_usd_total{model="gpt-3.5-turbo"}' in text
    assert 'llmproxy_queue_depth{queue="interactive"}' in text
    assert "llmproxy_job_latency_seconds_count" in text
    assert secret not in text and "sk-openai-default" not in text


def test_counters_add_up_and_survive_a_redis_outage(redis_client):
    import pytest
    import redis as redis_lib

    from llmproxy.telemetry import metrics

    down = redis_lib.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    counters = metrics.Counters(down, interval=None)
    metrics.record_http(counters, route="/v1/models", method="GET", status=200)
    metrics.record_http(counters, route="/v1/models", method="GET", status=200)
    with pytest.raises(redis_lib.RedisError):
        counters.flush()
    counters._client = redis_client  # Redis is back: what failed is sent with the next flush
    metrics.record_http(counters, route="/v1/models", method="GET", status=401)
    counters.flush()
    assert redis_client.hgetall(metrics.HTTP) == {b"/v1/models|GET|200": b"2", b"/v1/models|GET|401": b"1"}
    counters.flush()  # nothing pending: nothing sent twice
    assert redis_client.hget(metrics.HTTP, "/v1/models|GET|200") == b"2"
