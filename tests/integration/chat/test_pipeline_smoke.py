"""First end-to-end check of the queue path: web → Redis → real worker → stub → back."""


def test_sync_completion_through_worker(client, make_key, upstream, worker):
    secret, _ = make_key(name="smoke")
    r = client.post(
        "/v1/chat/completions",
        json={"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert r.status_code == 200, r.json
    assert r.json["object"] == "chat.completion"
    assert r.json["model"] == "gpt-3.5-turbo"
    assert r.headers["x-llmproxy-provider"] == "openai"
