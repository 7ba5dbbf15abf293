"""Parsing outside JSON: bounded nesting without recursion errors, no NUL, no lone surrogates, no NaN/Infinity."""

from __future__ import annotations

import json

import pytest

from llmproxy.json_input import MAX_DEPTH, JsonInputError, parse_json


def nested(depth: int, inner: str = "1") -> str:
    """`depth` arrays and objects alternating around `inner`."""
    text = inner
    for level in range(depth):
        text = f"[{text}]" if level % 2 else f'{{"k":{text}}}'
    return text


@pytest.mark.parametrize("as_bytes", [True, False])
def test_nesting_up_to_the_bound_parses(as_bytes):
    text = nested(MAX_DEPTH)
    assert parse_json(text.encode() if as_bytes else text) == json.loads(text)


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 5_000, 1_000_000])
def test_deeper_nesting_is_refused_without_a_recursion_error(depth):
    with pytest.raises(JsonInputError, match=f"deeper than {MAX_DEPTH}"):
        parse_json(("[" * depth + "]" * depth).encode())


def test_unclosed_deep_nesting_is_refused_too():
    with pytest.raises(JsonInputError, match="deeper"):
        parse_json(b"[" * 100_000)


def test_brackets_inside_strings_are_not_nesting():
    text = json.dumps({"a": "[{" * 500, "b": ['\\"[[[[' * 100]})
    assert parse_json(text.encode()) == json.loads(text)


@pytest.mark.parametrize(
    "text, param",
    [
        (r'{"model": "gpt-4\u0000"}', "model"),
        (r'{"messages": [{"role": "user", "content": "a\u0000b"}]}', "messages[0].content"),
        (r'{"meta": {"k\u0000": "v"}}', "meta"),  # in a key: the object holding it is named
        (r'{"\u0000": 1}', None),
        (r'["\u0000"]', "[0]"),
    ],
)
def test_nul_is_refused_naming_where(text, param):
    with pytest.raises(JsonInputError, match="U\\+0000") as info:
        parse_json(text.encode())
    assert info.value.param == param


def test_an_escaped_backslash_before_u0000_is_just_text():
    assert parse_json(rb'{"a": "\\u0000"}') == {"a": "\\u0000"}


def test_nul_in_a_utf16_body_is_refused():
    with pytest.raises(JsonInputError, match="U\\+0000"):
        parse_json(r'{"a": "\u0000"}'.encode("utf-16"))
    assert parse_json('{"a": "é"}'.encode("utf-16")) == {"a": "é"}


def test_surrogate_pairs_are_text_and_lone_surrogates_are_refused():
    assert parse_json(rb'{"a": "\ud83d\ude00 \uD83D\uDE00"}') == {"a": "😀 😀"}
    for lone in (rb'"\ud800"', rb'"\udc00"', rb'"\udc00\ud800"', rb'["\ud83d\ude00\ud83d"]'):
        with pytest.raises(JsonInputError, match="surrogate"):
            parse_json(lone)


def test_a_utf8_encoded_surrogate_is_not_utf8():
    with pytest.raises(ValueError) as info:
        parse_json(b'"\xed\xa0\x80"')
    assert not isinstance(info.value, JsonInputError)


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999", "-1e400"])
def test_nan_and_infinity_are_refused(number):
    with pytest.raises(JsonInputError):
        parse_json(f'{{"temperature": {number}}}'.encode())


@pytest.mark.parametrize("text", [b"{not json", b'{"a": 1} x', b"\xff\xfe\xfd", b'{"a": "\x00"}'])
def test_malformed_json_is_a_plain_value_error(text):
    with pytest.raises(ValueError) as info:
        parse_json(text)
    assert not isinstance(info.value, JsonInputError)


def test_ordinary_json_parses_as_json_loads_does():
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "héllo \\u0000 [{ 😀"}],
        "temperature": 0.5,
        "n": 2,
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
    }
    for text in (json.dumps(body), json.dumps(body, ensure_ascii=False)):
        assert parse_json(text.encode()) == body
    assert parse_json(b'\xef\xbb\xbf{"a": 1}') == {"a": 1}  # a UTF-8 byte order mark, as json.loads takes it
