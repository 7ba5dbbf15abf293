"""The operator's dashboard: server-rendered pages behind an admin sign-in (importing this registers them)."""

from web.dashboard import auth_pages, catalog, keys, usage, work
from web.dashboard.blueprint import bp

__all__ = ["auth_pages", "bp", "catalog", "keys", "usage", "work"]
