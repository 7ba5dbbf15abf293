"""One database session per request: opened on first use, committed before the response, always closed."""

from __future__ import annotations

import logging

from flask import Flask, g
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from llmproxy.errors import dependency_unavailable
from web.services import services

log = logging.getLogger(__name__)


def db() -> Session:
    """This request's session."""
    if "db" not in g:
        g.db = services().session_factory()
    return g.db


def commit() -> None:
    """Commit now (views that must be durable before a side effect, e.g. enqueueing a job)."""
    if "db" in g:
        try:
            g.db.commit()
        except (OperationalError, InterfaceError) as exc:
            g.db.rollback()
            raise dependency_unavailable("The database") from exc
        except SQLAlchemyError:
            g.db.rollback()
            raise


def release_connection() -> None:
    """Commit and give the connection back before a long wait (a waiting request holds no connection)."""
    commit()
    session = g.pop("db", None)
    if session is not None:
        session.close()


def init_app(app: Flask) -> None:
    """Register the hooks that own session lifetime."""

    @app.after_request
    def _commit(response):
        # Commit before the response leaves, so a 2xx always means "stored".
        if "db" in g and response.status_code < 400:
            try:
                commit()
            except Exception as exc:  # noqa: BLE001 - rendered as the one error type below
                from web.errors import render

                return render(exc)
        return response

    @app.teardown_request
    def _close(_exc):
        session = g.pop("db", None)
        if session is not None:
            session.rollback()
            session.close()
