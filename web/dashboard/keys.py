"""The dashboard's keys page: search, create with the secret shown once, edit limits and allowed models, revoke.

Every change goes through the same service functions as the admin API, so both show the same data."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flask import Response, abort, make_response, redirect, render_template, request, url_for

from llmproxy.errors import ApiError
from llmproxy.keys import virtual_keys
from llmproxy.keys.virtual_keys import key_json
from llmproxy.storage.models import ApiKey
from web.context import announce_config_change, db
from web.dashboard.blueprint import bp
from web.dashboard.signin import admin_page
from web.key_changes import reach_work_in_flight

_LIMIT_FIELDS = ("rpm_limit", "tpm_limit", "max_parallel_requests", "max_queued_jobs")


@bp.get("/keys")
@admin_page
def keys() -> Any:
    """Every key (or those whose name, prefix or id holds ?q=), newest first, with spend against budget."""
    query = request.args.get("q", "").strip()
    rows = [key_json(k) for k in virtual_keys.list_keys(db())]
    if query:
        wanted = query.lower()
        rows = [k for k in rows if any(wanted in str(k[f] or "").lower() for f in ("name", "prefix", "id"))]
    return render_template("dashboard/keys.html", keys=[_with_spend(k) for k in rows], q=query, error=None, form={})


@bp.post("/keys")
@admin_page
def create_key() -> Any:
    """Create a key; its secret is on this page only (never stored, never shown again)."""
    data = _key_fields(request.form)
    try:
        key, secret = virtual_keys.create_key(db(), data)
    except ApiError as exc:
        db().rollback()
        return _keys_with_error(exc, request.form)
    announce_config_change()
    return render_template("dashboard/key_created.html", key=key_json(key), secret=secret)


@bp.post("/keys/<key_id>")
@admin_page
def update_key(key_id: str) -> Any:
    """Change a key's name, limits, budget or allowed models."""
    key = _key(key_id)
    data = _key_fields(request.form)
    try:
        virtual_keys.apply_key_fields(db(), key, data)
    except ApiError as exc:
        db().rollback()
        return _keys_with_error(exc, request.form)
    reach_work_in_flight(key)  # new allowed models reach its queued and running work, as the admin API's do
    return redirect(url_for("dashboard.keys", q=key.id))


@bp.post("/keys/<key_id>/revoke")
@admin_page
def revoke_key(key_id: str) -> Any:
    """Revoke a key: refused from the next request on, its work in flight stopped."""
    key = _key(key_id)
    virtual_keys.revoke_key(db(), key)
    reach_work_in_flight(key)
    return redirect(url_for("dashboard.keys"))


def _key(key_id: str) -> ApiKey:
    try:
        return virtual_keys.get_key(db(), key_id)
    except ApiError:
        abort(404, "No such key.")


def _keys_with_error(exc: ApiError, form: Any) -> Response:
    rows = [_with_spend(key_json(k)) for k in virtual_keys.list_keys(db())]
    message = exc.body()["error"]["message"]
    page = render_template("dashboard/keys.html", keys=rows, q="", error=message, form=form)
    return make_response(page, exc.status)


def _key_fields(form: Any) -> dict[str, Any]:
    """The admin API's key fields from a form: blank means unlimited (null); numbers are passed as numbers."""
    data: dict[str, Any] = {}
    if "name" in form:
        data["name"] = form["name"].strip()
    for field in _LIMIT_FIELDS:
        if field in form:
            data[field] = _number(form[field])
    if "budget_usd" in form:
        data["budget_usd"] = form["budget_usd"].strip() or None
    if "models" in form:
        names = [m.strip() for m in form["models"].replace("\n", ",").split(",") if m.strip()]
        data["models"] = names or None
    return data


def _number(text: str) -> Any:
    text = text.strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        return text  # the service refuses it, naming the field


def _with_spend(key: dict[str, Any]) -> dict[str, Any]:
    """The key with the share of its budget spent (0..100, None without a budget), for its bar."""
    budget, spent = key.get("budget_usd"), key.get("spend_usd") or "0"
    share = None if budget in (None, "0") else min(100.0, float(Decimal(spent) / Decimal(budget) * 100))
    return {**key, "spent_share": share}
