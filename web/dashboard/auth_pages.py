"""Signing in and out of the dashboard, and its first page."""

from __future__ import annotations

from typing import Any

from flask import make_response, redirect, render_template, request, url_for

from web.dashboard.blueprint import bp
from web.dashboard.signin import admin_page, sign_in, sign_out, signed_in


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """Sign in with the admin key."""
    target = _local(request.values.get("next"))
    if request.method == "POST":
        if sign_in(request.form.get("admin_key", "")):
            return redirect(target)
        page = render_template("dashboard/login.html", error="That is not the admin key.", next=target)
        return make_response(page, 401)
    if signed_in():
        return redirect(target)
    return render_template("dashboard/login.html", error=None, next=target)


@bp.post("/logout")
@admin_page
def logout() -> Any:
    """Sign out."""
    sign_out()
    return redirect(url_for("dashboard.login"))


@bp.get("/")
@admin_page
def home() -> Any:
    """The dashboard's first page."""
    return redirect(url_for("dashboard.overview"))


def _local(target: str | None) -> str:
    """Only a path of this dashboard may be the place to go after signing in (no open redirect)."""
    if target and target.startswith("/dashboard") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("dashboard.overview")
