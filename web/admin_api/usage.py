"""Usage routes: a key's own figures (`/api/usage`) and the admin report (`/admin/usage`)."""

from __future__ import annotations

from decimal import Decimal

from flask import Blueprint, jsonify, request

from llmproxy import json_schema as js
from llmproxy.billing import usage_reports
from llmproxy.keys import virtual_keys
from llmproxy.limits import reservations
from llmproxy.storage.money import money
from web.auth import authenticate_admin, authenticate_client
from web.context import db, resources
from web.openapi.operation import Auth, json_reply, operation

# No url_prefix: the two routes live under different prefixes and authenticate differently.
bp = Blueprint("usage", __name__)
_COUNT = js.nullable(js.integer())
_KEY_USAGE = js.record(
    {
        **usage_reports.KEY_USAGE_SCHEMA["properties"],
        "remaining": js.record({"requests": _COUNT, "tokens": _COUNT, "budget_usd": js.money()}),
    }
)
_WHEN = js.string()  # unix seconds or an ISO date or datetime (naive = UTC)


def _remaining(key) -> dict:
    """What the key may still use now; Redis is asked only when the key has a rate limit."""
    remaining: dict[str, object] = {"requests": None, "tokens": None, "budget_usd": None}
    if key.rpm_limit is not None or key.tpm_limit is not None:
        state = reservations.peek(
            resources().redis, key_id=key.id, limits=reservations.KeyLimits(rpm=key.rpm_limit, tpm=key.tpm_limit)
        )
        remaining.update(requests=state.remaining_requests, tokens=state.remaining_tokens)
    if key.budget_usd is not None:
        remaining["budget_usd"] = money(max(key.budget_usd - key.spend_usd, Decimal(0)))
    return remaining


@bp.get("/api/usage")
@operation(auth=Auth.KEY, replies={200: json_reply("This key's limits, spend and totals.", _KEY_USAGE)})
def key_usage():
    """The calling key's limits, spend and ledger totals; never another key's."""
    key = virtual_keys.get_key(db(), authenticate_client().id)  # fresh spend, not the cached snapshot
    return jsonify({**usage_reports.key_usage(db(), key), "remaining": _remaining(key)})


@bp.get("/admin/usage")
@operation(
    auth=Auth.ADMIN,
    query={"group_by": js.enum(usage_reports.GROUPS), "since": _WHEN, "until": _WHEN},
    replies={
        200: json_reply(
            "Ledger totals per group.",
            js.record({"object": js.const("list"), "data": js.array(usage_reports.USAGE_ROW_SCHEMA)}),
        )
    },
)
def usage_report():
    """Ledger totals grouped by key, model, provider, deployment or UTC day over [since, until)."""
    authenticate_admin()
    rows = usage_reports.usage_report(
        db(),
        group_by=request.args.get("group_by", "key"),
        since=usage_reports.parse_time(request.args.get("since"), "since"),
        until=usage_reports.parse_time(request.args.get("until"), "until"),
    )
    return jsonify({"object": "list", "data": rows})
