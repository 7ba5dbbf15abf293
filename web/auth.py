"""Who is calling: a virtual key on client routes, ADMIN_API_KEY on admin routes."""

from __future__ import annotations

import hmac

from flask import g, request

from llmproxy.errors import forbidden, unauthorized
from llmproxy.keys.virtual_keys import KeyInfo, find_active_key, hash_secret, key_info
from web.context import db, resources


def bearer_token() -> str | None:
    """The token of an `Authorization: Bearer …` header, or None."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def is_admin_token(token: str | None) -> bool:
    """Constant-time comparison with ADMIN_API_KEY."""
    admin = resources().settings.admin_api_key
    return token is not None and hmac.compare_digest(token.encode(), admin.encode())


def authenticate_client() -> KeyInfo:
    """Require an active virtual key; 401 otherwise. Stores it on `g.api_key`.

    The key is read through the process's snapshots: a revoked key is refused within a second,
    at once when revoked through the admin API or CLI (they bump the config version).
    """
    token = bearer_token()
    if token is None:
        raise unauthorized(
            "Missing bearer authentication in header"
            if "Authorization" not in request.headers
            else "Authorization must use the Bearer scheme with a virtual key"
        )
    snapshots = resources().snapshots
    snapshots.sync(resources().redis)
    key = snapshots.get(("key", hash_secret(token)), lambda: key_info(find_active_key(db(), token)))
    if key is None:
        raise unauthorized("Incorrect API key provided")
    g.api_key = key
    return key


def require_client() -> None:
    """A blueprint's `before_request`: every route of it needs an active virtual key."""
    authenticate_client()


def authenticate_admin() -> None:
    """Require ADMIN_API_KEY; a virtual key here is 403, anything else 401."""
    token = bearer_token()
    if is_admin_token(token):
        return
    if token is not None and find_active_key(db(), token) is not None:
        raise forbidden("This route needs the admin key, not a virtual key", "admin_only")
    raise unauthorized("Admin routes need `Authorization: Bearer <ADMIN_API_KEY>`")


def current_key() -> KeyInfo:
    """The authenticated virtual key of this request."""
    return g.api_key
