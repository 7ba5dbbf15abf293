"""A worker killed mid-request: the job is picked up again, completes, and is billed exactly once.

Real processes: gunicorn (web), two Celery workers in turn, celery beat (the sweeper of lost
jobs), all on a Redis database of their own (see conftest.py), and the stub upstream.
"""

from __future__ import annotations

import threading

import requests

from llmproxy.devtools.stub_responses import Ok, Slow
from llmproxy.devtools.waiting import wait_for
from tests.support import records
from tests.support.processes import BeatProcess, WebProcess, WorkerProcess, WriterProcess, side_by_side


def test_job_of_a_killed_worker_completes_once(e2e_env, make_key, upstream, db):
    secret, key = make_key(name="crash")
    # The first call is slow enough to kill its worker in the middle; any re-run is answered at once.
    answer = Ok(content="survived the crash", prompt_tokens=40, completion_tokens=8)
    upstream.script("gpt-3.5-turbo", Slow(3, content="lost with the worker"), answer, answer, answer)
    first, beat, web = WorkerProcess(e2e_env, concurrency=2), BeatProcess(e2e_env), WebProcess(e2e_env, workers=1)
    second, writer = WorkerProcess(e2e_env, concurrency=2), WriterProcess(e2e_env)
    started = [first, beat, web, writer]
    outcome: dict = {}
    caller = None
    try:
        side_by_side(lambda p: p.start(), started)

        def call():
            try:
                outcome["response"] = requests.post(
                    web.url + "/v1/chat/completions",
                    timeout=60,
                    json={"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "survive"}]},
                    headers={"Authorization": f"Bearer {secret}"},
                )
            except requests.RequestException as exc:
                outcome["error"] = exc

        caller = threading.Thread(target=call, daemon=True)
        caller.start()
        wait_for(
            lambda: upstream.chat_bodies("gpt-3.5-turbo"), timeout=20, message="the upstream to receive the request"
        )
        first.kill()

        started.append(second)
        second.start()
        caller.join(60)
        assert not caller.is_alive(), "the HTTP request did not end"
        assert "error" not in outcome, outcome.get("error")
        response = outcome["response"]
        # 200 once the re-run's answer arrives within SYNC_TIMEOUT_SECONDS; a 504 still names the job.
        assert response.status_code in (200, 504), response.text
        job_id = response.headers["x-request-id"]
        if response.status_code == 200:
            assert response.json()["choices"][0]["message"]["content"] == "survived the crash"

        job = records.wait_for_job(db, job_id, statuses=("completed",), timeout=30)
        assert job.run_count >= 2  # taken again after the crash
        assert job.result["choices"][0]["message"]["content"] == "survived the crash"
        assert [a["outcome"] for a in job.attempts] == ["ok"]
        assert len(upstream.chat_bodies("gpt-3.5-turbo")) >= 2
        (row,) = records.ledger(db, job_id)
        assert (row.prompt_tokens, row.completion_tokens) == (40, 8)
        assert row.cost_usd == records.cost(40, 8, "1.5", "2") == job.cost_usd
        assert len(records.ledger(db)) == 1
        assert records.key_spend(db, key["id"]) == row.cost_usd
    finally:
        side_by_side(lambda p: p.stop(), started)
        if caller is not None:
            caller.join(5)
