"""Batch lines paced against each deployment's own RPM: a batch over two deployments uses the sum of their quotas,
and the stub (which answers 429 past a deployment's RPM in any 60 s, as a provider does) never has to refuse one."""

from __future__ import annotations

import time

from llmproxy.devtools.waiting import wait_for
from tests.support import batching as b

MODEL = "gpt-3.5-turbo"
RPM = 60
LINES = 180  # three minutes of one deployment, a minute and a half of the two


def auth(secret):
    return {"Authorization": f"Bearer {secret}"}


def test_a_batch_over_two_deployments_drains_at_their_summed_rpm_without_a_429(
    client, admin_headers, make_key, upstream, worker, db
):
    [first] = client.get(f"/admin/models/{MODEL}/deployments", headers=admin_headers).json["data"]
    patched = client.patch(
        f"/admin/models/{MODEL}/deployments/{first['id']}",
        json={"upstream_model": "paced-a", "rpm_limit": RPM},
        headers=admin_headers,
    )
    assert patched.status_code == 200, patched.json
    second = client.post(
        f"/admin/models/{MODEL}/deployments",
        json={"provider": "openai", "upstream_model": "paced-b", "rpm_limit": RPM},
        headers=admin_headers,
    )
    assert second.status_code == 201, second.json
    for upstream_model in ("paced-a", "paced-b"):
        upstream.limit_rpm(upstream_model, RPM)
    secret, _ = make_key()

    started = time.monotonic()
    created = b.create_batch(client, secret, b.file_of(LINES))
    assert created.status_code == 200, created.json
    samples: list[tuple[float, int]] = []  # (seconds since the batch was created, lines ended)
    sent_unfinished: list[int] = []  # lines sent to the workers and not ended yet

    def drained():
        batch = client.get(f"/v1/batches/{created.json['id']}", headers=auth(secret)).json
        counts = batch["request_counts"]
        samples.append((time.monotonic() - started, counts["completed"] + counts["failed"]))
        jobs = b.batch_jobs(db, created.json["id"])
        sent_unfinished.append(
            sum(1 for j in jobs if j.enqueued_at is not None and j.status in ("queued", "in_progress"))
        )
        return batch if batch["status"] in b.FINAL else None

    batch = wait_for(drained, timeout=150, interval=0.5, message="the paced batch to end")
    elapsed = time.monotonic() - started
    print(f"\n{LINES} lines over two deployments of RPM {RPM}: {elapsed:.1f} s ({LINES / elapsed * 60:.0f} lines/min)")

    assert batch["status"] == "completed" and batch["request_counts"]["completed"] == LINES, batch
    assert upstream.rate_limited == 0  # neither deployment was ever called past its RPM
    served = {m: len(upstream.chat_bodies(m)) for m in ("paced-a", "paced-b")}
    assert sum(served.values()) == LINES and min(served.values()) >= LINES // 2 - 15, served  # both used
    # The first minute holds what both deployments allow, no more; the rest follows as their windows open.
    assert max(n for t, n in samples if t < 55) <= 2 * RPM
    assert max(n for t, n in samples if t < 55) >= 2 * RPM - 10, samples[-5:]  # the sum, not one deployment's
    # Lines are sent a window at a time: the deployments' summed RPM, not the 1,000 of a key without limits.
    assert 0 < max(sent_unfinished) <= 2 * RPM
    assert 60 <= elapsed <= 100  # about 120 lines a minute: one deployment alone would take three minutes
    billed = b.billed(db, batch["id"])
    assert len(billed) == LINES and set(billed.values()) == {1}
