"""A model with several deployments, through the real queue and the stub upstream: which deployment serves, with
which key, and how its usage is recorded and reported by deployment."""

from __future__ import annotations

import json

from llmproxy.devtools.stub_responses import Ok
from tests.support import records
from tests.support.cli import cli

MESSAGES = [{"role": "user", "content": "Say hello to the proxy"}]


def chat(client, secret, model="gpt-3.5-turbo"):
    return client.post(
        "/v1/chat/completions",
        json={"model": model, "messages": MESSAGES},
        headers={"Authorization": f"Bearer {secret}"},
    )


def add_deployment(client, admin_headers, model="gpt-3.5-turbo", **fields):
    response = client.post(f"/admin/models/{model}/deployments", json=fields, headers=admin_headers)
    assert response.status_code == 201, response.json
    return response.json


def test_a_second_deployment_serves_once_the_first_is_disabled(client, admin_headers, make_key, upstream, worker, db):
    secret, _ = make_key()
    [first] = client.get("/admin/models/gpt-3.5-turbo/deployments", headers=admin_headers).json["data"]
    served_first = chat(client, secret)
    assert served_first.status_code == 200, served_first.json
    job = records.recorded_job(db, served_first.headers["x-request-id"])
    assert [(a["deployment"], a["outcome"]) for a in job.attempts] == [(first["id"], "ok")]
    assert records.recorded_ledger(db, job.id).deployment_id == first["id"]
    second = add_deployment(
        client, admin_headers, provider="openai", upstream_model="gpt35-second", api_key="sk-second-own", weight=1
    )

    disabled = client.patch(
        f"/admin/models/gpt-3.5-turbo/deployments/{first['id']}", json={"enabled": False}, headers=admin_headers
    )
    assert disabled.status_code == 200, disabled.json
    upstream.script("gpt35-second", Ok(content="from the second", prompt_tokens=10, completion_tokens=5))
    served_second = chat(client, secret)

    assert served_second.status_code == 200, served_second.json
    assert served_second.json["model"] == "gpt-3.5-turbo"
    assert served_second.json["choices"][0]["message"]["content"] == "from the second"
    call = upstream.requests[-1]
    assert call["body"]["model"] == "gpt35-second"
    assert call["headers"]["Authorization"] == "Bearer sk-second-own"  # its own key, not the provider's
    job = records.recorded_job(db, served_second.headers["x-request-id"])
    assert [(a["deployment"], a["provider"], a["outcome"]) for a in job.attempts] == [(second["id"], "openai", "ok")]
    assert job.served_provider == "openai" and job.served_model == "gpt-3.5-turbo"
    assert records.recorded_ledger(db, job.id).deployment_id == second["id"]


def test_usage_is_reported_by_deployment(client, admin_headers, make_key, upstream, worker, db, env):
    secret, _ = make_key()
    [first] = client.get("/admin/models/gpt-3.5-turbo/deployments", headers=admin_headers).json["data"]
    upstream.script("gpt-3.5-turbo", Ok(prompt_tokens=1000, completion_tokens=500))
    ids = [chat(client, secret).headers["x-request-id"]]
    second = add_deployment(client, admin_headers, provider="openai", upstream_model="gpt35-b")
    client.patch(
        f"/admin/models/gpt-3.5-turbo/deployments/{first['id']}", json={"enabled": False}, headers=admin_headers
    )
    upstream.script("gpt35-b", Ok(prompt_tokens=100, completion_tokens=50), Ok(prompt_tokens=100, completion_tokens=50))
    ids += [chat(client, secret).headers["x-request-id"] for _ in range(2)]
    for job_id in ids:
        records.recorded_ledger(db, job_id)

    response = client.get("/admin/usage", query_string={"group_by": "deployment"}, headers=admin_headers)
    assert response.status_code == 200, response.json
    rows = {row["group"]: row for row in response.json["data"]}
    assert set(rows) == {str(first["id"]), str(second["id"])}
    one, two = rows[str(first["id"])], rows[str(second["id"])]
    assert (one["requests"], one["prompt_tokens"], one["completion_tokens"]) == (1, 1000, 500)
    assert (two["requests"], two["prompt_tokens"], two["completion_tokens"]) == (2, 200, 100)
    assert (two["model"], two["provider"]) == ("gpt-3.5-turbo", "openai")
    # gpt-3.5-turbo costs 1.5 / 2 USD per 1M tokens.
    assert (one["cost_usd"], two["cost_usd"]) == ("0.0025", "0.0005")

    from_cli = json.loads(cli(env, "usage", "--group-by", "deployment").stdout)
    assert from_cli == response.json["data"]
