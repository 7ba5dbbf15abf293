"""Bad Responses API requests get a 400 naming the param and store or bill nothing; another key's response is 404."""

from __future__ import annotations

import pytest

from llmproxy.devtools.waiting import wait_for
from tests.support import records

MODEL = "gpt-3.5-turbo"
MSG = {"role": "user", "content": "hi"}


def auth(secret: str) -> dict:
    return {"Authorization": f"Bearer {secret}"}


@pytest.mark.parametrize(
    "body, param, words",
    [
        ({"input": "x"}, "model", "model parameter"),
        ({"model": "text-embedding-3-small", "input": "x"}, "model", "embedding model"),
        ({"model": MODEL}, "input", "Missing"),
        ({"model": MODEL, "input": []}, "input", "input items"),
        ({"model": MODEL, "input": [{"type": "web_search_call", "id": "ws_1"}]}, "input[0].type", "web_search_call"),
        ({"model": MODEL, "input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type", "item_reference"),
        ({"model": MODEL, "input": [MSG, {"role": "robot", "content": "x"}]}, "input[1].role", "expected one of"),
        ({"model": MODEL, "input": [{"role": "user"}]}, "input[0].content", "Missing"),
        (
            {"model": MODEL, "input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
            "input[0].content[0].type",
            "input_file",
        ),
        (
            {"model": MODEL, "input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file-1"}]}]},
            "input[0].content[0].file_id",
            "image_url",
        ),
        ({"model": MODEL, "input": [{"type": "function_call", "call_id": "c"}]}, "input[0].name", "Missing"),
        ({"model": MODEL, "input": [{"type": "function_call_output", "output": "x"}]}, "input[0].call_id", "Missing"),
        ({"model": MODEL, "input": "x", "tools": [{"type": "web_search"}]}, "tools[0].type", "only 'function'"),
        ({"model": MODEL, "input": "x", "tools": [{"type": "function", "name": "a b"}]}, "tools[0].name", "name"),
        ({"model": MODEL, "input": "x", "tool_choice": "sometimes"}, "tool_choice", "expected one of"),
        ({"model": MODEL, "input": "x", "max_output_tokens": 8}, "max_output_tokens", "16"),
        ({"model": MODEL, "input": "x", "temperature": 3}, "temperature", "temperature"),
        ({"model": MODEL, "input": "x", "text": {"format": {"type": "xml"}}}, "text.format.type", "expected one of"),
        ({"model": MODEL, "input": "x", "background": True, "store": False}, "store", "background"),
        ({"model": MODEL, "input": "x", "background": True, "stream": True}, "stream", "poll"),
        ({"model": MODEL, "input": "x", "previous_response_id": "resp_nope"}, "previous_response_id", "not found"),
        ({"model": MODEL, "input": "x", "conversation": "conv_1"}, "conversation", "previous_response_id"),
        ({"model": MODEL, "input": "x", "metadata": {"k": 5}}, "metadata", "metadata"),
    ],
)
def test_bad_requests_are_400_naming_the_param_and_store_nothing(client, make_key, db, body, param, words):
    secret, _ = make_key()
    r = client.post("/v1/responses", json=body, headers=auth(secret))
    assert r.status_code == 400, r.json
    error = r.json["error"]
    assert error["param"] == param and words.lower() in error["message"].lower(), error
    assert records.jobs(db) == [] and records.ledger(db) == []


def test_another_keys_response_is_404_and_cannot_be_continued(client, make_key, upstream, worker, db):
    mine, _ = make_key()
    theirs, _ = make_key()
    r = client.post("/v1/responses", json={"model": MODEL, "input": "secret plans"}, headers=auth(mine))
    assert r.status_code == 200, r.json
    response_id = r.json["id"]
    records.recorded_job(db, response_id)
    for method, path in (
        ("get", f"/v1/responses/{response_id}"),
        ("get", f"/v1/responses/{response_id}/input_items"),
        ("delete", f"/v1/responses/{response_id}"),
        ("post", f"/v1/responses/{response_id}/cancel"),
    ):
        other = getattr(client, method)(path, headers=auth(theirs))
        assert other.status_code == 404 and other.json["error"]["code"] == "not_found", (path, other.json)
    continued = client.post(
        "/v1/responses",
        json={"model": MODEL, "input": "and?", "previous_response_id": response_id},
        headers=auth(theirs),
    )
    assert continued.status_code == 400 and continued.json["error"]["param"] == "previous_response_id"
    assert len(records.jobs(db)) == 1 and len(records.ledger(db)) == 1
    assert client.get(f"/v1/responses/{response_id}", headers=auth(mine)).json["status"] == "completed"


def test_input_items_are_listed_with_ids_newest_first_and_paged(client, make_key, upstream, worker, db):
    secret, _ = make_key()
    items = [{"role": "user", "content": f"line {i}"} for i in range(5)]
    r = client.post("/v1/responses", json={"model": MODEL, "input": items}, headers=auth(secret))
    assert r.status_code == 200, r.json
    path = f"/v1/responses/{r.json['id']}/input_items"
    wait_for(lambda: client.get(path, headers=auth(secret)).status_code == 200, timeout=10, message="its items")
    page = client.get(f"{path}?limit=2", headers=auth(secret)).json
    assert [i["content"][0]["text"] for i in page["data"]] == ["line 4", "line 3"] and page["has_more"] is True
    rest = client.get(f"{path}?limit=10&after={page['last_id']}", headers=auth(secret)).json
    assert [i["content"][0]["text"] for i in rest["data"]] == ["line 2", "line 1", "line 0"]
    assert rest["has_more"] is False and all(i["type"] == "message" and i["id"] for i in rest["data"])
    asc = client.get(f"{path}?order=asc&limit=1", headers=auth(secret)).json
    assert asc["data"][0]["content"] == [{"type": "input_text", "text": "line 0"}]


def test_responses_count_against_the_keys_limits_like_chat(client, make_key, upstream, worker, db):
    secret, _ = make_key(rpm_limit=1)
    first = client.post("/v1/responses", json={"model": MODEL, "input": "one"}, headers=auth(secret))
    assert first.status_code == 200, first.json
    chat = client.post("/v1/chat/completions", json={"model": MODEL, "messages": [MSG]}, headers=auth(secret))
    second = client.post("/v1/responses", json={"model": MODEL, "input": "two"}, headers=auth(secret))
    for refused in (chat, second):  # one request a minute, whichever API asks
        assert refused.status_code == 429 and refused.json["error"]["code"] == "rate_limit_exceeded", refused.json
        assert int(refused.headers["Retry-After"]) >= 1
    records.recorded_ledger(db, first.json["id"])
    assert len(records.jobs(db)) == 1 and len(records.ledger(db)) == 1


def test_an_image_reaches_a_provider_without_the_responses_api_as_a_chat_image(client, make_key, upstream, worker, db):
    secret, _ = make_key()
    image = "data:image/png;base64,iVBORw0KGgo="
    content = [{"type": "input_text", "text": "What is it?"}, {"type": "input_image", "image_url": image}]
    r = client.post(
        "/v1/responses",
        json={"model": "mistral-tiny", "input": [{"role": "user", "content": content}]},
        headers=auth(secret),
    )
    assert r.status_code == 200 and r.json["status"] == "completed", r.json
    [sent] = [x["body"] for x in upstream.requests if x["path"] == "/mistral/v1/chat/completions"]
    assert sent["messages"][0]["content"][1] == {"type": "image_url", "image_url": {"url": image}}
