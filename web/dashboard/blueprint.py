"""The dashboard's blueprint and what every page shares: the sign-in state, the CSRF token, error pages, headers.

The dashboard's HTML pages are not part of the HTTP API: /openapi.json leaves them out."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, make_response, render_template, request
from werkzeug.exceptions import HTTPException

from web.dashboard.signin import csrf_token, signed_in

bp = Blueprint("dashboard", __name__, url_prefix="/dashboard", template_folder="templates", static_folder="static")


@bp.app_template_global()
def form_token() -> str:
    """The CSRF token every form of a signed-in page carries."""
    return csrf_token()


@bp.context_processor
def _page_context() -> dict[str, Any]:
    return {"signed_in": signed_in(), "page": request.endpoint.split(".")[-1] if request.endpoint else ""}


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Response:
    """A refused or unknown page, as a page (the API's JSON errors are for API callers)."""
    page = render_template("dashboard/error.html", code=exc.code, message=exc.description)
    return make_response(page, exc.code or 500)


@bp.after_request
def _no_store(response: Response) -> Response:
    """Pages show keys and spend: never cached, never framed by another site."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = "default-src 'self'; frame-ancestors 'none'; form-action 'self'"
    response.headers["Referrer-Policy"] = "same-origin"
    return response
