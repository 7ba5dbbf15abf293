"""OpenAI's Responses API through the official SDK: a plain response, a streamed one, a function call answered with
previous_response_id, background responses polled and cancelled, a Mistral model, and the ledger exact for each.

The main ones run twice: on an `openai` provider, which has the Responses API and gets the request as it is at
the stub's /v1/responses ("native"), and on an `openai_compatible` one, which gets its chat translation at
/v1/chat/completions ("translated"); the SDK must see no difference."""

from __future__ import annotations

import json

import openai
import pytest

from llmproxy.devtools.stub_responses import BreakStream, Fail, Ok
from llmproxy.devtools.waiting import wait_for
from tests.support import records

MODEL = "gpt-3.5-turbo"  # openai provider (has the Responses API): the stub's OpenAI dialect
PRICES = ("1.5", "2")
COMPAT = "compat-chat"  # on an openai_compatible provider: served through the chat translation
TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.fixture
def sdk(live, make_key):
    """An SDK client with a fresh key; returns (client, key json)."""
    secret, key = make_key(name="responses")
    client = openai.OpenAI(base_url=live + "/v1", api_key=secret, max_retries=0, timeout=30)
    yield client, key
    client.close()


def chat_bodies(upstream, path: str = "/v1/chat/completions") -> list[dict]:
    return [r["body"] for r in upstream.requests if r["path"] == path]


@pytest.fixture(params=["native", "translated"])
def served(request, client, admin_headers, upstream):
    """(model, how it is served): MODEL natively, or COMPAT (same prices) through the chat translation."""
    if request.param == "native":
        return MODEL, "native"
    provider = {"name": "compat", "kind": "openai_compatible", "api_base": upstream.url}
    assert client.post("/admin/providers", json=provider, headers=admin_headers).status_code == 201
    model = {"name": COMPAT, "provider": "compat", "input_cost_per_1m": PRICES[0], "output_cost_per_1m": PRICES[1]}
    assert client.post("/admin/models", json=model, headers=admin_headers).status_code == 201
    return COMPAT, "translated"


def sent_bodies(upstream, how: str) -> list[dict]:
    """What the upstream received: Responses requests (native) or chat requests (translated)."""
    return chat_bodies(upstream, "/v1/responses" if how == "native" else "/v1/chat/completions")


def billed_exactly(db, response_id: str, prompt: int, completion: int, prices: tuple[str, str]) -> None:
    """One ledger row for the response, with these tokens at these prices per 1M."""
    entry = records.recorded_ledger(db, response_id)
    assert (entry.prompt_tokens, entry.completion_tokens) == (prompt, completion)
    assert entry.cost_usd == records.cost(prompt, completion, *prices)
    assert len(records.ledger(db, response_id)) == 1


def test_a_plain_response(sdk, served, upstream, worker, db):
    client, _ = sdk
    model, how = served
    upstream.script(model, Ok(content="Hello there", prompt_tokens=11, completion_tokens=2))

    response = client.responses.create(model=model, input="Say hello", instructions="Be brief", max_output_tokens=50)

    assert response.id.startswith("resp_") and response.object == "response" and response.status == "completed"
    assert response.model == model and response.output_text == "Hello there"
    [message] = response.output
    assert message.type == "message" and message.role == "assistant" and message.content[0].type == "output_text"
    assert (response.usage.input_tokens, response.usage.output_tokens, response.usage.total_tokens) == (11, 2, 13)
    assert response.instructions == "Be brief" and response.max_output_tokens == 50
    [sent] = sent_bodies(upstream, how)
    if how == "native":  # as it was asked, but kept by the gateway, not the provider
        assert sent["input"] == [{"type": "message", "role": "user", "content": "Say hello"}]
        assert (sent["instructions"], sent["max_output_tokens"], sent["store"]) == ("Be brief", 50, False)
    else:
        assert sent["messages"] == [{"role": "system", "content": "Be brief"}, {"role": "user", "content": "Say hello"}]
        assert sent["max_tokens"] == 50 and "input" not in sent and "instructions" not in sent
    billed_exactly(db, response.id, 11, 2, PRICES)
    assert client.responses.retrieve(response.id).output_text == "Hello there"  # stored (store defaults to true)


def test_a_streamed_response_through_the_sdk_event_iterator(sdk, served, upstream, worker, db):
    client, _ = sdk
    model, how = served
    upstream.script(model, Ok(content="one two three four", prompt_tokens=5, completion_tokens=4))

    events = list(client.responses.create(model=model, input="Count", stream=True))

    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    final = events[-1].response
    assert deltas == final.output_text == "one two three four"
    assert {"response.output_item.added", "response.content_part.added", "response.output_text.done"} <= set(kinds)
    done = next(e for e in events if e.type == "response.output_item.done")
    assert done.item.id == final.output[0].id  # the streamed item is the stored one
    assert sent_bodies(upstream, how)[0]["stream"] is True
    billed_exactly(db, final.id, 5, 4, PRICES)
    assert client.responses.retrieve(final.id).output_text == "one two three four"


def test_a_function_call_and_its_output_sent_back_with_previous_response_id(sdk, served, upstream, worker, db):
    client, _ = sdk
    model, how = served
    upstream.script(
        model,
        Ok(
            tool_calls=[{"name": "get_weather", "arguments": '{"city": "Paris"}'}],
            prompt_tokens=30,
            completion_tokens=7,
        ),
        Ok(content="It is sunny in Paris", prompt_tokens=45, completion_tokens=6),
    )

    first = client.responses.create(model=model, input="Weather in Paris?", tools=[TOOL], tool_choice="auto")
    [call] = first.output
    assert (
        call.type == "function_call" and call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"}
    )
    second = client.responses.create(
        model=model,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 24 C"}],
        tools=[TOOL],
    )

    assert second.output_text == "It is sunny in Paris" and second.previous_response_id == first.id
    sent = sent_bodies(upstream, how)
    if how == "native":  # the stored conversation goes in as input items; the provider never sees our ids
        assert sent[0]["tools"] == [TOOL] and "previous_response_id" not in sent[1]
        assert sent[1]["input"] == [
            {"type": "message", "role": "user", "content": "Weather in Paris?"},
            {"type": "function_call", "call_id": call.call_id, "name": "get_weather", "arguments": call.arguments},
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 24 C"},
        ]
    else:
        assert sent[0]["tools"] == [{"type": "function", "function": {k: v for k, v in TOOL.items() if k != "type"}}]
        replayed = sent[1]["messages"]  # the stored conversation, then the new input
        assert replayed[0] == {"role": "user", "content": "Weather in Paris?"}
        assert replayed[1]["role"] == "assistant" and replayed[1]["tool_calls"][0]["id"] == call.call_id
        assert replayed[2] == {"role": "tool", "tool_call_id": call.call_id, "content": "sunny, 24 C"}
    billed_exactly(db, first.id, 30, 7, PRICES)
    billed_exactly(db, second.id, 45, 6, PRICES)
    items = client.responses.input_items.list(second.id, order="asc")
    assert [i.type for i in items.data] == ["function_call_output"]  # its own input, not the replayed one


def test_a_background_response_is_polled_to_completion(sdk, upstream, worker, db):
    client, _ = sdk
    upstream.script(MODEL, Ok(content="done in the background", prompt_tokens=8, completion_tokens=4))

    created = client.responses.create(model=MODEL, input="Work quietly", background=True, metadata={"run": "bg"})

    assert created.status in ("queued", "in_progress") and created.background is True
    assert created.metadata == {"run": "bg"} and created.output == []
    done = wait_for(
        lambda: (r := client.responses.retrieve(created.id)).status == "completed" and r,
        timeout=20,
        message="the background response to complete",
    )
    assert done.output_text == "done in the background"
    billed_exactly(db, created.id, 8, 4, PRICES)


def test_a_queued_background_response_is_cancelled_and_never_billed(live, make_key, upstream, worker, db):
    # One request a minute (jobs get 80 % of it, at least 1): the second background response waits its turn.
    secret, _ = make_key(rpm_limit=1)
    client = openai.OpenAI(base_url=live + "/v1", api_key=secret, max_retries=0, timeout=30)
    first = client.responses.create(model=MODEL, input="first", background=True)
    wait_for(lambda: client.responses.retrieve(first.id).status == "completed", timeout=20, message="the first")
    waiting = client.responses.create(model=MODEL, input="second", background=True)

    cancelled = client.responses.cancel(waiting.id)

    assert cancelled.status == "cancelled"
    assert client.responses.retrieve(waiting.id).status == "cancelled"
    assert len(sent_bodies(upstream, "native")) == 1 and records.ledger(db, waiting.id) == []
    client.close()


def test_a_mistral_model_answers_through_the_translation(sdk, upstream, worker, db):
    client, _ = sdk
    upstream.script("mistral-tiny", Ok(content="Bonjour", prompt_tokens=9, completion_tokens=1))

    response = client.responses.create(
        model="mistral-tiny", input=[{"role": "user", "content": [{"type": "input_text", "text": "Salut"}]}]
    )

    assert response.output_text == "Bonjour" and response.model == "mistral-tiny"
    [sent] = chat_bodies(upstream, "/mistral/v1/chat/completions")  # the stub answers 422 to a field Mistral lacks
    assert sent["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Salut"}]}]
    billed_exactly(db, response.id, 9, 1, ("0.15", "0.75"))


def test_store_false_is_answered_but_not_kept_and_deleted_ones_are_gone(sdk, upstream, worker, db):
    client, _ = sdk
    unstored = client.responses.create(model=MODEL, input="forget me", store=False)
    assert unstored.output_text == "echo: forget me" and unstored.store is False
    records.recorded_ledger(db, unstored.id)  # billed all the same
    row = records.recorded_job(db, unstored.id)
    assert row.request == {"model": MODEL, "store": False} and row.result is None  # its words are not kept
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unstored.id)
    kept = client.responses.create(model=MODEL, input="keep me")
    records.recorded_job(db, kept.id)
    assert client.responses.delete(kept.id) is None
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(kept.id)
    assert len(records.ledger(db, kept.id)) == 1  # its usage stays


def test_a_fallback_crosses_from_the_native_api_to_the_translation(sdk, upstream, worker, db):
    client, _ = sdk
    # gpt-3.5-turbo (openai: native) fails every try; its fallback mistral-tiny answers through the translation.
    upstream.script(MODEL, *[Fail(503)] * 3)
    upstream.script("mistral-tiny", Ok(content="from the fallback", prompt_tokens=6, completion_tokens=3))

    response = client.responses.create(model=MODEL, input="Anyone there?")

    assert response.output_text == "from the fallback" and response.model == "mistral-tiny"
    assert len(sent_bodies(upstream, "native")) == 3
    [sent] = chat_bodies(upstream, "/mistral/v1/chat/completions")
    assert sent["messages"] == [{"role": "user", "content": "Anyone there?"}]
    billed_exactly(db, response.id, 6, 3, ("0.15", "0.75"))
    job = records.recorded_job(db, response.id)
    assert [(a["model"], a["outcome"]) for a in job.attempts][-1] == ("mistral-tiny", "ok")


def test_a_stream_that_breaks_after_it_began_ends_with_response_failed(sdk, served, upstream, worker, db):
    client, _ = sdk
    model, _how = served
    upstream.script(model, BreakStream(after_chunks=4, content="one two three four five six"))

    events = list(client.responses.create(model=model, input="Count", stream=True))

    assert events[0].type == "response.created" and events[-1].type == "response.failed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[-1].response.status == "failed" and events[-1].response.error.code == "stream_interrupted"
    assert client.responses.retrieve(events[0].response.id).status == "failed"
