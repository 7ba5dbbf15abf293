"""Signing in to the dashboard with the admin key: a session cookie, a CSRF token on every form, signing out.

The cookie is Flask's signed session (HttpOnly, SameSite=Strict, Secure when the request came over HTTPS),
signed with a key derived from ENCRYPTION_KEY, so no new secret is needed and a new key signs everyone
out. It holds a fingerprint of the admin key it was opened with (changing ADMIN_API_KEY ends every
session; it never holds the key itself) and a session id that must still be live in Redis: signing out
deletes it, so a copied cookie is worthless afterwards, not only until it expires.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Flask, Request, abort, redirect, request, session, url_for
from flask.sessions import SecureCookieSessionInterface

from web.auth import is_admin_token
from web.context import resources

SESSION_SECONDS = 12 * 3600  # a signed-in session lasts a working day
F = TypeVar("F", bound=Callable[..., Any])


class DashboardSessions(SecureCookieSessionInterface):
    """Flask's signed cookie, Secure whenever the request itself came over HTTPS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        """Secure over HTTPS (a plain-HTTP deployment on loopback still signs in)."""
        return bool(request and request.is_secure)


def init_sessions(app: Flask, encryption_key: bytes) -> None:
    """Configure the session cookie of the dashboard."""
    app.secret_key = hmac.new(encryption_key, b"llmproxy dashboard sessions", hashlib.sha256).digest()
    app.session_interface = DashboardSessions()
    app.config.update(
        SESSION_COOKIE_NAME="llmproxy_dashboard",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_PATH="/dashboard",
        PERMANENT_SESSION_LIFETIME=SESSION_SECONDS,
    )


def _admin_fingerprint() -> str:
    admin = resources().settings.admin_api_key.encode()
    return hmac.new(admin, b"llmproxy dashboard session", hashlib.sha256).hexdigest()


def _live_key(session_id: str) -> str:
    return f"llmproxy:dashboard:session:{session_id}"


def sign_in(token: str) -> bool:
    """Open a session if `token` is the admin key (compared in constant time)."""
    if not is_admin_token(token):
        return False
    session_id = secrets.token_urlsafe(24)
    resources().redis.set(_live_key(session_id), 1, ex=SESSION_SECONDS)
    session.clear()
    session.permanent = True
    session.update(admin=_admin_fingerprint(), sid=session_id, csrf=secrets.token_urlsafe(32), since=int(time.time()))
    return True


def sign_out() -> None:
    """End the session, here and for any copy of its cookie."""
    session_id = session.get("sid")
    if isinstance(session_id, str):
        resources().redis.delete(_live_key(session_id))
    session.clear()


def signed_in() -> bool:
    """The request carries a live session opened with the current admin key."""
    mark, session_id = session.get("admin"), session.get("sid")
    if not isinstance(mark, str) or not isinstance(session_id, str):
        return False
    return hmac.compare_digest(mark, _admin_fingerprint()) and bool(resources().redis.exists(_live_key(session_id)))


def csrf_token() -> str:
    """The session's form token (templates put it in every form)."""
    return str(session.get("csrf", ""))


def check_csrf(req: Request) -> None:
    """403 unless a POST carries the session's form token (a forged cross-site form cannot know it)."""
    sent = req.form.get("csrf_token", "")
    if not sent or not hmac.compare_digest(sent, csrf_token()):
        abort(403, "The form was not sent from this dashboard session (CSRF token missing or wrong).")


def admin_page(view: F) -> F:
    """A dashboard page: signed-in admins only (others go to the sign-in page); POSTs need the form token."""

    @wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if not signed_in():
            if request.method == "POST":
                abort(403, "Sign in first.")
            return redirect(url_for("dashboard.login", next=request.path))
        if request.method == "POST":
            check_csrf(request)
        return view(*args, **kwargs)

    return guarded  # type: ignore[return-value]
