"""Admin body fields: each reads (checks) a value and describes what it accepts; a Body puts them together."""

from __future__ import annotations

from decimal import Decimal

import pytest

from llmproxy import json_schema as js
from llmproxy import validation as v
from llmproxy.errors import ApiError

BODY = v.Body(
    {"name": v.text(max_len=8), "limit": v.whole(minimum=1, maximum=10), "price": v.money(nullable=False)},
    required=("name",),
)


def refused(call) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call()
    assert caught.value.status == 400
    return caught.value


def test_fields_read_what_their_schema_says_and_refuse_the_rest():
    assert BODY.read({"name": "  ab "}, "name") == "ab"
    assert BODY.read({"limit": 10}, "limit") == 10
    assert BODY.read({"price": "1.50"}, "price") == Decimal("1.50")
    assert BODY.read({"price": 2}, "price") == 2
    assert refused(lambda: BODY.read({"limit": 11}, "limit")).param == "limit"
    assert refused(lambda: BODY.read({"limit": True}, "limit")).param == "limit"
    assert refused(lambda: BODY.read({"name": "123456789"}, "name")).param == "name"
    # Decimal() would take these; the schema's pattern does not, and neither does the check.
    for text in ("1_000", " 5", "NaN", "Infinity", "1e"):
        assert refused(lambda text=text: BODY.read({"price": text}, "price")).param == "price"
    assert refused(lambda: BODY.read({"price": None}, "price")).param == "price"  # not nullable


def test_a_body_refuses_unknown_and_fixed_members_and_requires_its_required_ones():
    assert refused(lambda: BODY.check_known({"nmae": "x"})).code == "unknown_field"
    assert refused(lambda: BODY.check_known({"name": "x"}, fixed={"name"})).param == "name"
    assert refused(lambda: BODY.require({}, "name")).code == "missing_field"
    assert refused(lambda: BODY.require({"name": None}, "name")).code == "missing_field"


def test_the_schema_of_a_body_when_creating_and_when_changing():
    creating = BODY.schema(creating=True)
    assert creating["required"] == ["name"] and creating["additionalProperties"] is False
    assert creating["properties"]["name"] == js.string(minLength=1, maxLength=8, pattern=r"\S")
    assert creating["properties"]["limit"] == js.nullable(js.integer(1, 10))
    assert {"type": "null"} not in creating["properties"]["price"]["anyOf"]
    changing = BODY.schema(creating=False, fixed={"name"})
    assert "required" not in changing and set(changing["properties"]) == {"limit", "price"}


def test_a_check_without_a_schema_is_refused_by_schema_of():
    def undescribed(value, param):
        """No schema."""

    with pytest.raises(TypeError, match="undescribed"):
        js.schema_of(undescribed)
    assert js.schema_of(js.describes(js.BOOLEAN)(undescribed)) == js.BOOLEAN
