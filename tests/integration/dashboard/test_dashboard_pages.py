"""The dashboard's models and jobs pages show what the admin and OpenAI APIs show: chains, prices, deployment
health, failed attempts, batches with their progress and files, jobs by status."""

from __future__ import annotations

from llmproxy.devtools.stub_responses import Fail
from llmproxy.jobs.deployment_choice import cool_key
from tests.support import batching as b
from tests.support import records

ADMIN_KEY = "admin-test-key-0123456789"


def signed_in(client):
    assert client.post("/dashboard/login", data={"admin_key": ADMIN_KEY}).status_code == 302
    return client


def test_models_show_chains_prices_health_and_recent_failures(
    client, admin_headers, make_key, upstream, worker, db, rds
):
    models = {m["name"]: m for m in client.get("/admin/models", headers=admin_headers).json["data"]}
    gpt = models["gpt-3.5-turbo"]
    [deployment] = gpt["deployments"]
    secret, _ = make_key()
    upstream.script("gpt-3.5-turbo", *[Fail(503)] * 3)  # it falls back to mistral-tiny: three failed attempts
    r = client.post(
        "/v1/chat/completions",
        json={"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "x"}]},
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert r.status_code == 200
    records.recorded_job(db, r.headers["x-request-id"])
    rds.set(cool_key(deployment["id"]), 1, px=30_000)

    page = signed_in(client).get("/dashboard/models").get_data(as_text=True)

    assert "gpt-3.5-turbo → " + " → ".join(gpt["fallbacks"]) in page
    assert f"${gpt['input_cost_per_1m']} / ${gpt['output_cost_per_1m']}" in page
    row = page.split(f'data-deployment="{deployment["id"]}"')[1].split("</li>")[0]
    assert "cooling" in row  # its cooldown, as routing sees it
    openai_row = page.split('data-provider="openai"')[1].split("</tr>")[0]
    assert '<td class="failures">3</td>' in openai_row
    assert page.count("server_error") + page.count("unavailable") >= 1


def test_batches_show_progress_and_files_and_jobs_filter_by_status(client, make_key, upstream, worker, db):
    secret, _ = make_key(name="batcher")
    created = b.create_batch(client, secret, b.file_of(3))
    batch = b.wait_batch(
        lambda i: client.get(f"/v1/batches/{i}", headers={"Authorization": f"Bearer {secret}"}).json, created.json["id"]
    )
    signed_in(client)
    page = client.get("/dashboard/work?batch_status=completed").get_data(as_text=True)
    row = page.split(f'data-batch-id="{batch["id"]}"')[1].split("</tr>")[0]
    assert 'max="3" value="3"' in row and '<td class="counts">3 / 0 / 3</td>' in row and "batcher" in row
    output = client.get(f"/dashboard/files/{batch['output_file_id']}")
    assert output.status_code == 200 and len(b.parse(output.data)) == 3  # the admin reads any key's files
    assert client.get("/dashboard/files/file-unknown").status_code == 404
    failed_only = client.get("/dashboard/work?job_status=failed").get_data(as_text=True)
    assert "data-job-id" not in failed_only
    assert client.get("/dashboard/work?job_status=completed").get_data(as_text=True).count("data-job-id") == 3
    assert "data-batch-id" not in client.get("/dashboard/work?batch_status=cancelled").get_data(as_text=True)
    assert client.get("/dashboard/work?job_status=bogus").status_code == 400
    assert 'http-equiv="refresh"' in client.get("/dashboard/work?live=1").get_data(as_text=True)
